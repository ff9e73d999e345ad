"""The desk's lists page over real HTTP, on SQLite and PostgreSQL: each list's schedule and
next run as the job store has them, its counts as ``lists show`` counts them, and its
files' problems as ``lists check`` reports them; the publication file's own problems."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from click.testing import CliRunner
from markupsafe import escape

from newsletter.cli import cli
from newsletter.lists import list_stats, load_config
from newsletter.lists.addresscache import opened_cache
from newsletter.lists.check import PublicationCheck
from newsletter.models import SuppressionReason
from newsletter.store import suppressions
from tests.desk_support import SCHEDULED_AT, Desk, schedule_jobs, signed_in
from tests.servers.webapp import WebApp


@pytest.fixture
def web(desk_web: WebApp) -> WebApp:
    return desk_web


BAD_ROWS = "broken@,Broken,Nowhere\nZOE.ANGSTROM@example.org,Zoë again,Kellmouth\n"


def section(page: str, list_id: str) -> str:
    found = re.search(rf'<section class="list"[^>]*>\s*<h2[^>]*>[^<]*<span class="note">'
                      rf"\({re.escape(list_id)}\)</span>.*?</section>", page, re.S)
    assert found, list_id
    return found.group(0)


def fact(part: str, name: str) -> str:
    found = re.search(rf"<dt>{name}</dt><dd>(.*?)</dd>", part, re.S)
    assert found, name
    return found.group(1)


def check_lines(desk: Desk) -> list[str]:
    """``newsletter lists check``'s problem lines, as "SEVERITY FILE:LINE: MESSAGE" with
    the file named from the publication's folder."""
    result = CliRunner().invoke(cli, ["--home", str(desk.settings.home), "lists", "check"])
    home = f"{desk.settings.home}/"
    lines = []
    for line in result.output.splitlines():
        where, sep, rest = line.partition(": ")
        if sep and where.startswith(home):
            severity, _, message = rest.partition(": ")
            lines.append(f"{severity} {where.removeprefix(home)}: {message}")
    return lines


def problems_shown(part: str) -> list[str]:
    items = re.findall(r'<li><span class="state severity-\w+">(.*?)</li>', part, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", item)) for item in items]


def test_each_list_as_the_files_the_store_and_the_schedule_have_it(
    desk: Desk, web: WebApp
) -> None:
    weekly_csv = desk.settings.subscribers_dir / "weekly.csv"
    with weekly_csv.open("a", encoding="utf-8") as handle:
        handle.write(BAD_ROWS)
    at = SCHEDULED_AT
    with desk.store.engine.begin() as conn:
        suppressions.add(conn, "jose.nunez@example.org", SuppressionReason.UNSUBSCRIBED,
                         scope="weekly", at=at)
        suppressions.add(conn, "jose.nunez@example.org", SuppressionReason.COMPLAINED, at=at)
        suppressions.add(conn, "stranger@example.org", SuppressionReason.MANUAL, at=at)
    schedule_jobs(desk)
    config = load_config(desk.settings)

    page = signed_in(web).get(web.url("/desk/lists")).text

    with desk.store.engine.connect() as conn, opened_cache(desk.settings.var_dir) as cache:
        for list_id, mailing_list in config.lists.items():
            part = section(page, list_id)
            stats = list_stats(config, list_id, conn, check_deliverability=False, cache=cache)
            assert str(escape(mailing_list.title)) in part
            assert fact(part, "Members") == f"{stats.counts.members:,}"
            assert fact(part, "Suppressed").startswith(f"{stats.suppressed:,} (so "
                                                       f"{stats.recipients:,} get mail)")
            assert fact(part, "Invalid rows") == f"{stats.counts.invalid:,}"
            assert fact(part, "Duplicates") == f"{stats.counts.duplicates:,}"
    weekly, instant = section(page, "weekly"), section(page, "every-article")
    assert fact(weekly, "Schedule") == "<code>0 8 * * mon</code> (Europe/London)"
    assert fact(weekly, "Next run") == "2026-11-23 08:00 GMT"
    assert fact(instant, "Next run") == "at each collection"
    assert fact(weekly, "Suppressed").startswith("1 (so ")
    assert fact(weekly, "Invalid rows") == "1"
    assert problems_shown(weekly) == check_lines(desk)
    assert len(problems_shown(weekly)) == 2
    assert "subscribers/weekly.csv:11</code>: invalid address &#39;broken@&#39;" in weekly
    assert "Some files have errors" in page and "(1 error, 1 warning)" in page


def test_before_the_scheduler_ever_ran_a_digest_has_no_next_run(
    desk: Desk, web: WebApp
) -> None:
    page = signed_in(web).get(web.url("/desk/lists")).text

    assert fact(section(page, "weekly"), "Next run").startswith("not scheduled")
    assert "Every list reads cleanly (0 errors, 0 warnings)" in page


def test_the_publication_files_own_problems_are_listed(desk: Desk, web: WebApp) -> None:
    toml = desk.settings.subscribers_dir / "publication.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace(
        'timezone = "Europe/London"', 'timezone = "<b>Europe/Kellmouth</b>"'), encoding="utf-8")

    response = signed_in(web).get(web.url("/desk/lists"))

    assert response.status_code == 200
    assert "so no list could be read" in response.text
    assert re.search(r"<code>subscribers/publication.toml:\d+</code>: lists.weekly.timezone: "
                     r"&#39;&lt;b&gt;Europe/Kellmouth", response.text)
    assert "<b>Europe" not in response.text
    assert '<section class="list"' not in response.text


def test_a_list_with_many_bad_rows_shows_the_first_and_counts_the_rest(
    desk: Desk, web: WebApp
) -> None:
    weekly_csv = desk.settings.subscribers_dir / "weekly.csv"
    with weekly_csv.open("a", encoding="utf-8") as handle:
        for n in range(80):
            handle.write(f"<i>bad{n}@,Bad,Nowhere\n")

    weekly = section(signed_in(web).get(web.url("/desk/lists")).text, "weekly")

    assert weekly.count('<span class="state severity-error">') == 50
    assert "And 30 more: <code>newsletter lists check</code> lists every one." in weekly
    assert fact(weekly, "Invalid rows") == "80"
    assert "<i>bad" not in weekly and "&lt;i&gt;bad0@" in weekly


def counted_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The lists this process checks (reads the files of) from now on, in order."""
    checked: list[str] = []
    real = PublicationCheck.check_list

    def counting(
        self: PublicationCheck, config: Any, list_id: str, *args: Any, **kwargs: Any
    ) -> Any:
        checked.append(list_id)
        return real(self, config, list_id, *args, **kwargs)

    monkeypatch.setattr(PublicationCheck, "check_list", counting)
    return checked


def test_a_list_is_read_again_only_when_its_files_change(
    desk: Desk, web: WebApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = counted_checks(monkeypatch)
    client = signed_in(web)
    first = client.get(web.url("/desk/lists")).text
    again = client.get(web.url("/desk/lists")).text
    assert sorted(checked) == ["every-article", "weekly"] and again == first

    with (desk.settings.subscribers_dir / "weekly.csv").open("a", encoding="utf-8") as handle:
        handle.write("new.reader@example.org,New,Truro\n")
    grown = client.get(web.url("/desk/lists")).text
    assert checked[2:] == ["weekly"]
    assert fact(section(grown, "weekly"), "Members") == "8"

    with desk.store.engine.begin() as conn:
        suppressions.add(conn, "new.reader@example.org", SuppressionReason.BOUNCED_HARD,
                         at=desk.store.now())
    suppressed = client.get(web.url("/desk/lists")).text
    assert checked[3:] == []  # suppressions are counted afresh against the kept members
    assert fact(section(suppressed, "weekly"), "Suppressed").startswith("1 (so 7 get mail)")
    with desk.store.engine.begin() as conn:
        suppressions.remove(conn, "new.reader@example.org")
    lifted = client.get(web.url("/desk/lists")).text
    assert fact(section(lifted, "weekly"), "Suppressed").startswith("0 (so 8 get mail)")
    assert fact(section(lifted, "every-article"), "Suppressed").startswith("0 (so 5 get mail)")
    assert checked[3:] == []


def test_a_forgotten_member_counts_as_suppressed_once(desk: Desk, web: WebApp) -> None:
    client = signed_in(web)
    client.get(web.url("/desk/lists"))  # the members are read and kept before the change
    with desk.store.engine.begin() as conn:
        suppressions.add_forgotten(conn, "Zoe.Angstrom@example.org", at=SCHEDULED_AT)
        suppressions.add(conn, "zoe.angstrom@example.org", SuppressionReason.MANUAL,
                         scope="weekly", at=SCHEDULED_AT)
        suppressions.add(conn, "forgotten:not-hex", SuppressionReason.MANUAL, at=SCHEDULED_AT)

    page = client.get(web.url("/desk/lists")).text

    config = load_config(desk.settings)
    with desk.store.engine.connect() as conn:
        stats = list_stats(config, "weekly", conn, check_deliverability=False)
    assert stats.suppressed == 1
    assert fact(section(page, "weekly"), "Suppressed").startswith("1 (so 6 get mail)")
