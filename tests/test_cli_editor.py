"""The editor's second look: rescheduling, unqueueing, send times that cannot be, articles
already sent, a draft's articles edited, and what ``issue show`` says about them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import time_machine
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, select

from newsletter.cli import cli
from newsletter.store.tables import articles

MAY = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def invoke(home: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home), *args])


def ok(home: Path, *args: str) -> str:
    result = invoke(home, *args)
    assert result.exit_code == 0, result.output
    return result.output


def fails(home: Path, *args: str) -> str:
    result = invoke(home, *args)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert len(result.output.splitlines()) == 1, result.output
    return result.output


def shown(home: Path, issue_id: int) -> dict[str, object]:
    data: dict[str, object] = json.loads(ok(home, "issue", "show", str(issue_id), "--json"))
    return data


def article_ids(home: Path) -> list[int]:
    """The collected articles' ids, newest first (read from the database itself)."""
    ok(home, "collect")
    return list(article_titles(home))


def article_titles(home: Path) -> dict[int, str]:
    engine = create_engine(f"sqlite:///{home / 'var' / 'newsletter.db'}")
    try:
        with engine.connect() as conn:
            query = select(articles.c.id, articles.c.title).order_by(articles.c.id.desc())
            return {i: title for i, title in conn.execute(query)}
    finally:
        engine.dispose()


def draft_of(home: Path, *ids: int, list_id: str = "weekly") -> int:
    args = [arg for i in ids for arg in ("--article", str(i))]
    (issue_id,) = json.loads(ok(home, "issue", "draft", list_id, *args, "--json"))["drafted"]
    return int(issue_id)


def in_issue(home: Path, issue_id: int) -> list[int]:
    data = json.loads(ok(home, "issue", "articles", str(issue_id), "--json"))
    return [a["id"] for a in data]


# -- rescheduling and unqueueing --
def test_a_queued_issue_is_rescheduled_then_sent_back_to_draft(home: Path) -> None:
    issue_id = draft_of(home, *article_ids(home)[:2])
    with time_machine.travel(MAY, tick=False):
        ok(home, "issue", "queue", str(issue_id), "--at", "2026-06-01 08:00")
        out = ok(home, "issue", "reschedule", str(issue_id), "--at", "2026-06-02 09:30")
        assert out == (
            f"Issue {issue_id} rescheduled for 2026-06-02 09:30 Europe/London "
            "(UTC+01:00; 2026-06-02 08:30 UTC).\n"
        )
        data = shown(home, issue_id)
        assert data["state"] == "queued"
        assert str(data["send_at"]).startswith("2026-06-02 08:30")
        history = data["history"]
        assert isinstance(history, list)
        assert (history[-1]["from"], history[-1]["to"]) == ("queued", "queued")
        assert "2026-06-02T08:30:00+00:00" in history[-1]["note"]
        assert "2026-06-01T07:00:00+00:00" in history[-1]["note"]  # what it was

        assert ok(home, "issue", "unqueue", str(issue_id)) == (
            f"Issue {issue_id} is a draft again; `newsletter issue queue {issue_id}` queues it.\n"
        )
        data = shown(home, issue_id)
        assert data["state"] == "draft" and data["send_at"] is None
        history = data["history"]
        assert isinstance(history, list)
        assert (history[-1]["from"], history[-1]["to"]) == ("queued", "draft")
        ok(home, "issue", "edit", str(issue_id), "--subject", "Edited after unqueueing")
        assert invoke(home, "issue", "reschedule", str(issue_id), "--now").exit_code == 1


def test_reschedule_to_now_makes_it_due(home: Path) -> None:
    issue_id = draft_of(home, *article_ids(home)[:2])
    with time_machine.travel(MAY, tick=False):
        ok(home, "issue", "queue", str(issue_id), "--at", "2026-06-01 08:00")
        ok(home, "send")
        assert shown(home, issue_id)["state"] == "queued"
        out = ok(home, "issue", "reschedule", str(issue_id), "--now")
        assert out == f"Issue {issue_id} rescheduled to go out now (at the next send).\n"
        ok(home, "send")
        assert shown(home, issue_id)["state"] == "sent"


def test_only_a_queued_issue_is_rescheduled_or_unqueued(home: Path) -> None:
    issue_id = draft_of(home, *article_ids(home)[:1])
    assert fails(home, "issue", "reschedule", str(issue_id), "--at", "2030-01-01 08:00") == (
        f"Error: issue {issue_id} is draft; only a queued issue can be rescheduled "
        f"(`newsletter issue queue {issue_id} --at …` queues a draft)\n"
    )
    assert fails(home, "issue", "unqueue", str(issue_id)) == (
        f"Error: issue {issue_id} is draft; only a queued issue can go back to draft\n"
    )
    usage = invoke(home, "issue", "reschedule", str(issue_id))
    assert usage.exit_code == 2 and "give --at TIME or --now" in usage.output


# -- send times that cannot be --
def test_a_past_send_time_is_refused_with_both_times(home: Path) -> None:
    issue_id = draft_of(home, *article_ids(home)[:1])
    with time_machine.travel(datetime(2026, 12, 6, 10, 0, tzinfo=UTC), tick=False):
        out = fails(home, "issue", "queue", str(issue_id), "--at", "2026-12-06 09:00")
        assert out == (
            "Error: --at 2026-12-06 09:00 Europe/London (UTC+00:00) is in the past: it is now "
            "2026-12-06 10:00 Europe/London; give a later time, or leave out --at to send now\n"
        )
        assert shown(home, issue_id)["state"] == "draft"
        ok(home, "issue", "queue", str(issue_id), "--at", "2026-12-06 10:00")  # this minute
        assert "is in the past" in fails(
            home, "issue", "reschedule", str(issue_id), "--at", "2026-12-01 10:00"
        )
        assert str(shown(home, issue_id)["send_at"]).startswith("2026-12-06 10:00")


def test_a_time_in_a_daylight_saving_gap_is_refused_naming_the_gap(home: Path) -> None:
    issue_id = draft_of(home, *article_ids(home)[:1])
    with time_machine.travel(datetime(2026, 3, 1, tzinfo=UTC), tick=False):
        out = fails(home, "issue", "queue", str(issue_id), "--at", "2026-03-29 01:30")
    assert out == (
        "Error: --at 2026-03-29 01:30 does not exist in Europe/London: the clocks go forward "
        "from 01:00 to 02:00 that night (a daylight-saving gap); give a time outside it\n"
    )


def test_a_time_that_happens_twice_is_the_first_and_the_editor_is_told(home: Path) -> None:
    issue_id = draft_of(home, *article_ids(home)[:1])
    with time_machine.travel(datetime(2026, 10, 1, tzinfo=UTC), tick=False):
        out = ok(home, "issue", "queue", str(issue_id), "--at", "2026-10-25 01:30")
    assert out.splitlines() == [
        "2026-10-25 01:30 happens twice in Europe/London (the clocks go back at 02:00): the "
        "first is taken, UTC+01:00; for the second give '2026-10-25 01:30+00:00'",
        f"Issue {issue_id} queued for 2026-10-25 01:30 Europe/London "
        "(UTC+01:00; 2026-10-25 00:30 UTC).",
    ]
    assert str(shown(home, issue_id)["send_at"]).startswith("2026-10-25 00:30")


# -- an article already sent --
def test_draft_refuses_an_article_already_sent_to_the_list_unless_again(home: Path) -> None:
    first, second = article_ids(home)[:2]
    sent = draft_of(home, first)
    ok(home, "issue", "queue", str(sent))
    ok(home, "send")
    assert shown(home, sent)["state"] == "sent"
    assert fails(
        home, "issue", "draft", "weekly", "--article", str(second), "--article", str(first)
    ) == (
        f"Error: article {first} already went to weekly in issue {sent} (sent); "
        "give --again to send it again\n"
    )
    assert json.loads(ok(home, "issue", "list", "--json"))[0]["id"] == sent  # nothing drafted
    out = json.loads(
        ok(home, "issue", "draft", "weekly", "--article", str(first), "--again", "--json")
    )
    assert len(out["drafted"]) == 1
    # Another list has not had it: no refusal there.
    draft_of(home, first, list_id="every-article")


def test_draft_refuses_an_article_waiting_in_another_issue(home: Path) -> None:
    first = article_ids(home)[0]
    waiting = draft_of(home, first)
    assert fails(home, "issue", "draft", "weekly", "--article", str(first)) == (
        f"Error: article {first} is already in issue {waiting} of weekly (draft); "
        "give --again to put it in another issue too\n"
    )
    ok(home, "issue", "cancel", str(waiting))
    draft_of(home, first)  # a cancelled issue never carried it


# -- a draft's articles --
def test_a_drafts_articles_are_added_moved_and_removed(home: Path) -> None:
    a, b, c, d = article_ids(home)[:4]
    issue_id = draft_of(home, a, b)
    ok(home, "issue", "preview", str(issue_id))
    assert in_issue(home, issue_id) == [a, b]
    assert ok(home, "issue", "add-article", str(issue_id), str(c), "--position", "1") == (
        f"Issue {issue_id}: article {c} added at position 1 of 3.\n"
    )
    ok(home, "issue", "add-article", str(issue_id), str(d))  # at the end
    assert in_issue(home, issue_id) == [c, a, b, d]
    assert ok(home, "issue", "move-article", str(issue_id), str(b), "--to", "1") == (
        f"Issue {issue_id}: article {b} moved to position 1 of 4.\n"
    )
    assert in_issue(home, issue_id) == [b, c, a, d]
    assert ok(home, "issue", "remove-article", str(issue_id), str(c)) == (
        f"Issue {issue_id}: article {c} removed; 3 left.\n"
    )
    assert in_issue(home, issue_id) == [b, a, d]

    # The rendering follows: the preview shows the articles in their new order.
    ok(home, "issue", "preview", str(issue_id))
    html = (home / "var" / "preview" / f"issue-{issue_id}.html").read_text(encoding="utf-8")
    titles = article_titles(home)
    positions = [html.find(titles[i][:12]) for i in (b, a, d)]
    assert -1 not in positions and positions == sorted(positions)
    assert titles[c][:12] not in html

    # The removed article is the list's to offer again; the others are taken.
    unsent = [
        x["id"] for x in json.loads(ok(home, "articles", "list", "--unsent-to", "weekly", "--json"))
    ]
    assert c in unsent and b not in unsent and a not in unsent
    history = shown(home, issue_id)["history"]
    assert isinstance(history, list)
    assert [h["note"] for h in history[1:]] == [
        f"article {c} added at position 1",
        f"article {d} added at position 4",
        f"article {b} moved to position 1",
        f"article {c} removed",
    ]


def test_article_edits_are_refused_with_reasons(home: Path) -> None:
    a, b, c = article_ids(home)[:3]
    issue_id = draft_of(home, a, b)
    assert fails(home, "issue", "add-article", str(issue_id), str(a)) == (
        f"Error: article {a} is already in issue {issue_id}, at position 1\n"
    )
    assert fails(home, "issue", "add-article", str(issue_id), "4242") == (
        "Error: no article with id 4242\n"
    )
    assert fails(home, "issue", "add-article", str(issue_id), str(c), "--position", "4") == (
        f"Error: --position 4: issue {issue_id} has 2 articles; give 1 to 3\n"
    )
    assert fails(home, "issue", "move-article", str(issue_id), str(a), "--to", "3") == (
        f"Error: --to 3: issue {issue_id} has 2 articles; give 1 to 2\n"
    )
    assert fails(home, "issue", "remove-article", str(issue_id), str(c)) == (
        f"Error: article {c} is not in issue {issue_id}\n"
    )
    other = draft_of(home, c)
    assert fails(home, "issue", "add-article", str(issue_id), str(c)) == (
        f"Error: article {c} is already in issue {other} of weekly (draft); "
        "give --again to put it in another issue too\n"
    )
    ok(home, "issue", "add-article", str(issue_id), str(c), "--again")
    ok(home, "issue", "queue", str(issue_id))
    assert fails(home, "issue", "remove-article", str(issue_id), str(a)) == (
        f"Error: issue {issue_id} is queued; only drafts can be edited "
        f"(`newsletter issue unqueue {issue_id}` makes it a draft again)\n"
    )
    assert in_issue(home, issue_id) == [a, b, c]


# -- what issue show says --
def test_show_lists_the_articles_and_the_local_send_time(home: Path) -> None:
    a, b = article_ids(home)[:2]
    titles = article_titles(home)
    issue_id = draft_of(home, b, a)
    with time_machine.travel(MAY, tick=False):
        ok(home, "issue", "queue", str(issue_id), "--at", "2026-06-01 08:00")
        out = ok(home, "issue", "show", str(issue_id))
        data = shown(home, issue_id)
        listed = ok(home, "issue", "list")
    assert f"{issue_id:>5}  queued           weekly           2026-06-01 08:00 BST  " in listed
    assert "  Send at:  2026-06-01 08:00 Europe/London (UTC+01:00; 2026-06-01 07:00 UTC)\n" in out
    assert (
        "  Articles: 2\n"
        f"    1. {b:>4}  {titles[b]}  (articles)\n"
        f"    2. {a:>4}  {titles[a]}  (articles)\n"
    ) in out
    assert data["send_at"] == "2026-06-01 07:00:00+00:00"
    articles = data["articles"]
    assert isinstance(articles, list)
    assert [(x["id"], x["title"], x["source"]) for x in articles] == [
        (b, titles[b], "articles"),
        (a, titles[a], "articles"),
    ]


# -- preview --open --
def test_preview_open_without_a_browser_says_where_the_files_are(
    home: Path, tmp_path: Path
) -> None:
    issue_id = draft_of(home, *article_ids(home)[:1])
    empty = tmp_path / "no-browsers"
    empty.mkdir()
    env = {
        k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")
    } | {"PATH": str(empty)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "newsletter",
            "--home",
            str(home),
            "issue",
            "preview",
            str(issue_id),
            "--open",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    html = home / "var" / "preview" / f"issue-{issue_id}.html"
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"Error: no web browser to open the preview with (set BROWSER to one); the files are "
        f"{html} and {html.with_suffix('.txt')}"
    ), done.stderr
    assert html.is_file() and html.with_suffix(".txt").is_file()


def test_a_preheader_the_editor_wrote_survives_article_edits(home: Path) -> None:
    a, b = article_ids(home)[:2]
    made = draft_of(home, a)
    (written,) = json.loads(
        ok(
            home,
            "issue",
            "draft",
            "weekly",
            "--article",
            str(b),
            "--preheader",
            "Storm week",
            "--json",
        )
    )["drafted"]
    for issue_id in (made, written):
        ok(
            home,
            "issue",
            "add-article",
            str(issue_id),
            str(a if issue_id == written else b),
            "--again",
        )
    titles = article_titles(home)

    def preheader_of(issue_id: int) -> str:  # the preview's HTML, the preheader first
        ok(home, "issue", "preview", str(issue_id))
        return (home / "var" / "preview" / f"issue-{issue_id}.html").read_text(encoding="utf-8")

    assert f"In this issue: {titles[a][:12]}" in preheader_of(made)
    assert titles[b][:12] in preheader_of(made).split("In this issue:")[1][:300]
    assert "Storm week" in preheader_of(written) and "In this issue:" not in preheader_of(written)
