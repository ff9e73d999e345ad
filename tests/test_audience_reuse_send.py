"""A send copies the audience of the last issue to a list read from the very same files,
and reads the list again whenever anything that shapes its audience has changed."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from newsletter.config import Settings
from newsletter.editor import report
from newsletter.lists.audience_key import audience_key
from newsletter.lists.forget import forget
from newsletter.lists.signups import append_rows
from newsletter.models import Subscriber
from newsletter.publisher import Publisher
from newsletter.store import Store, tally
from newsletter.store import issues as issue_store
from newsletter.store.audience_origins import AudienceOrigin
from newsletter.store.audience_sources import SourceKey
from newsletter.store.tables import audience_sources, recipients
from tests.test_cli_issue import ok

COPIED = "audience copied from issue"


@pytest.fixture
def publisher(settings: Settings) -> Iterator[Publisher]:
    opened = Publisher(settings, Store.open(settings.database_url))
    opened.collect()
    yield opened
    opened.store.close()


def weekly_file(publisher: Publisher) -> Path:
    return publisher.config.member_paths("weekly")[0]


def send(publisher: Publisher, after: int | None = None) -> int:
    """Draft, queue and send an issue to the weekly list (of ``after``'s articles)."""
    issue_id = queued(publisher, after)
    report = publisher.send_issue(issue_id)
    assert report.final_state == "sent", report
    return issue_id


def queued(publisher: Publisher, after: int | None) -> int:
    """A queued issue to the weekly list: of the new articles, or of ``after``'s again."""
    articles = None
    if after is not None:
        with publisher.store.engine.connect() as conn:
            articles = issue_store.article_ids(conn, after)
    [issue_id] = publisher.draft("weekly", article_ids=articles)
    publisher.queue(issue_id)
    return issue_id


def ledger(publisher: Publisher, issue_id: int) -> dict[str, tuple[object, ...]]:
    """Each row: spelling, name, fields, and status as read (a batch sent whole marks none)."""
    columns = recipients.c
    stmt = (select(columns.email, columns.email_as_written, columns.name, columns.fields,
                   tally.recipient_status)
            .select_from(tally.recipients_with_batch).where(columns.issue_id == issue_id))
    with publisher.store.engine.connect() as conn:
        return {row[0]: tuple(row[1:]) for row in conn.execute(stmt)}


def recorded(publisher: Publisher) -> list[int]:
    with publisher.store.engine.connect() as conn:
        return list(conn.execute(select(audience_sources.c.issue_id)).scalars())


def sent_to(publisher: Publisher, issue_id: int) -> int:
    folder = publisher.settings.outbox_path / f"issue-{issue_id}-weekly"
    return len(list(folder.glob("*.eml")))


def test_a_second_issue_to_an_unchanged_list_copies_the_first_audience(
    publisher: Publisher, caplog: pytest.LogCaptureFixture,
) -> None:
    first = send(publisher)
    with caplog.at_level(logging.INFO, logger="newsletter.publisher"):
        second = send(publisher, after=first)
    assert f"issue {second}: {COPIED} {first}" in caplog.text
    assert ledger(publisher, second) == ledger(publisher, first)
    assert sent_to(publisher, second) == sent_to(publisher, first) == len(ledger(publisher, first))
    assert recorded(publisher) == [first, second]


def test_an_edited_member_file_is_read_again_and_then_copied(
    publisher: Publisher, caplog: pytest.LogCaptureFixture,
) -> None:
    first = send(publisher)
    path = weekly_file(publisher)
    path.write_text(path.read_text(encoding="utf-8").replace("Lena Fischer", "Lena Fisher")
                    + "new.reader@example.org,New Reader,Truro\n", encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="newsletter.publisher"):
        second = send(publisher, after=first)
        assert COPIED not in caplog.text
        third = send(publisher, after=first)
    assert f"issue {third}: {COPIED} {second}, whose list files read the same" in caplog.text
    assert set(ledger(publisher, second)) == set(ledger(publisher, first)) | {
        "new.reader@example.org"}
    assert ledger(publisher, second)["lena.fischer@example.org"][1] == "Lena Fisher"
    assert ledger(publisher, third) == ledger(publisher, second)


# -- rows appended since -------------------------------------------------------------------
def sign_up(publisher: Publisher, *readers: tuple[str, str]) -> Path:
    """Readers confirmed, as the sign-up form appends them (the file made by the first)."""
    path = publisher.config.signup_path("weekly")
    assert path is not None
    append_rows(path, [Subscriber(email, name) for email, name in readers])
    return path


def test_rows_appended_to_the_sign_up_file_are_read_after_a_copy(
    publisher: Publisher, caplog: pytest.LogCaptureFixture,
) -> None:
    """Week after week: the audience before is copied, and only the new sign-ups are read.
    The result is what reading every file gives, row for row."""
    signups = sign_up(publisher, ("ada@example.org", "Ada"))
    first = send(publisher)
    sign_up(publisher, ("bea@example.org", "Bea"), ("Zoe.Angstrom@example.org", "Again"))
    with caplog.at_level(logging.INFO, logger="newsletter.publisher"):
        second = send(publisher, after=first)
        sign_up(publisher, ("cy@example.org", "Cy"))
        third = send(publisher, after=first)
        assert recorded(publisher) == [first, second, third]
        read_again = send_read_whole(publisher, after=first)
    lines = len(signups.read_text(encoding="utf-8").splitlines())
    assert f"issue {second}: {COPIED} {first}, then the rows appended to weekly-signups.csv " \
           "since (from line 3) read" in caplog.text
    assert f"issue {third}: {COPIED} {second}, then the rows appended to weekly-signups.csv " \
           f"since (from line {lines}) read" in caplog.text
    assert f"issue {second}: 9 recipients in 2 batches (0 suppressed, 1 duplicates)" in caplog.text
    for issue_id in (third, read_again):  # the repeat counted as a read of every file counts it
        assert f"issue {issue_id}: 10 recipients in " in caplog.text
    assert caplog.text.count("(0 suppressed, 1 duplicates)") == 3
    assert set(ledger(publisher, second)) == {*ledger(publisher, first), "bea@example.org"}
    assert ledger(publisher, second)["zoe.angstrom@example.org"][1] == "Zoë Ångström"  # first
    assert set(ledger(publisher, third)) == {*ledger(publisher, second), "cy@example.org"}
    assert sent_to(publisher, third) == len(ledger(publisher, third))
    assert ledger(publisher, read_again) == ledger(publisher, third)


def test_the_first_sign_up_makes_a_file_read_after_a_copy(
    publisher: Publisher, caplog: pytest.LogCaptureFixture,
) -> None:
    first = send(publisher)
    sign_up(publisher, ("ada@example.org", "Ada"), ("jose.nunez@example.org", "Again"))
    with caplog.at_level(logging.INFO, logger="newsletter.publisher"):
        second = send(publisher, after=first)
    assert f"{COPIED} {first}, then weekly-signups.csv, new since, read" in caplog.text
    assert "(0 suppressed, 1 duplicates)" in caplog.text
    assert set(ledger(publisher, second)) == {*ledger(publisher, first), "ada@example.org"}
    assert ledger(publisher, second)["jose.nunez@example.org"][1] == "José Núñez"
    third = send_read_whole(publisher, after=first)
    assert ledger(publisher, third) == ledger(publisher, second)


def test_how_each_audience_was_frozen_is_kept_for_editors(publisher: Publisher) -> None:
    """``issue show``, its JSON, the report (the desk's and the API's) say it."""
    signups = sign_up(publisher, ("ada@example.org", "Ada"))
    first = send(publisher)
    sign_up(publisher, ("bea@example.org", "Bea"), ("Zoe.Angstrom@example.org", "Again"))
    second = send(publisher, after=first)
    third = send(publisher, after=first)
    home, lines = publisher.settings.home, len(signups.read_text().splitlines()) - 1
    shown = ok(home, "issue", "show", str(first))
    assert "  Audience:   read from the list's files\n" in shown
    shown = ok(home, "issue", "show", str(second))
    assert f"  Audience:   copied from issue {first}, then the rows appended to " \
           f"weekly-signups.csv since (from line {lines}) read; 1 repeated address dropped" \
           in shown
    as_json = json.loads(ok(home, "issue", "show", str(third), "--json"))["audience"]
    assert as_json == {
        "summary": f"copied from issue {second}, whose list files read the same; 1 repeated "
                   "address dropped",
        "copied_from": second, "appended_to": None, "from_line": None,
        "rows": len(ledger(publisher, third)), "duplicates": 1}
    found = report.report(publisher.store, second).audience
    assert found is not None and (found.rows, found.duplicates) == (9, 1)
    assert found.origin == AudienceOrigin(first, "weekly-signups.csv", lines)


def send_read_whole(publisher: Publisher, after: int) -> int:
    """An issue whose audience is read from every file: no earlier one is there to copy."""
    with publisher.store.engine.begin() as conn:
        conn.execute(delete(audience_sources))
    return send(publisher, after=after)


def test_rows_appended_to_a_file_before_the_last_one_make_the_list_read_again(
    publisher: Publisher, caplog: pytest.LogCaptureFixture,
) -> None:
    """Rows read after the sign-up file would come before its rows: read again."""
    sign_up(publisher, ("ada@example.org", "Ada"))
    first = send(publisher)
    with weekly_file(publisher).open("a", encoding="utf-8") as out:
        out.write("ada@example.org,Ada From The Members File,Truro\n")
    with caplog.at_level(logging.INFO, logger="newsletter.publisher"):
        second = send(publisher, after=first)
    assert COPIED not in caplog.text
    assert ledger(publisher, second)["ada@example.org"][1] == "Ada From The Members File"


@pytest.mark.parametrize("change", ["edited", "cut", "no line break"])
def test_a_last_file_that_did_not_only_grow_is_read_again(
    publisher: Publisher, caplog: pytest.LogCaptureFixture, change: str,
) -> None:
    path = weekly_file(publisher)
    text = path.read_text(encoding="utf-8")
    if change == "no line break":  # an append would join the last line: it adds one first
        path.write_text(text.rstrip("\n"), encoding="utf-8")
    first = send(publisher)
    text = path.read_text(encoding="utf-8")
    grown = {
        "edited": text.replace("Arjun Mehta", "Arjun Mehra"),
        "cut": text.replace("lena.fischer@example.org,Lena Fischer,Hamburg\n", ""),
        "no line break": text,
    }[change] + "\nnew.reader@example.org,New Reader,Truro\n"
    path.write_text(grown, encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="newsletter.publisher"):
        second = send(publisher, after=first)
    assert COPIED not in caplog.text
    assert "new.reader@example.org" in ledger(publisher, second)
    assert ("lena.fischer@example.org" in ledger(publisher, second)) == (change != "cut")


def test_an_invalid_row_appended_is_reported_at_its_line(
    publisher: Publisher, caplog: pytest.LogCaptureFixture,
) -> None:
    signups = sign_up(publisher, ("ada@example.org", "Ada"))
    first = send(publisher)
    with signups.open("a", encoding="utf-8") as out:
        out.write("# a comment\n\nnot an address,Bad\nbea@example.org,Bea\n")
    with caplog.at_level(logging.INFO, logger="newsletter.publisher"):
        second = send(publisher, after=first)
    assert f"{COPIED} {first}, then the rows appended" in caplog.text
    assert f"{signups}: 1 invalid row skipped (the first, line 5: invalid address " \
           "'not an address'" in caplog.text
    assert "bea@example.org" in ledger(publisher, second)


def test_a_reader_forgotten_since_is_left_out_even_from_an_old_copy_of_the_file(
    publisher: Publisher, caplog: pytest.LogCaptureFixture,
) -> None:
    """The old file, put back after the reader was forgotten, has the first issue's bytes;
    the audience is read again, and the forgotten reader is left out as it is read."""
    path = weekly_file(publisher)
    old = path.read_bytes()
    first = send(publisher)
    gone = "jose.nunez@example.org"
    assert gone in ledger(publisher, first)
    forget(publisher.config, publisher.store, publisher.settings.var_dir, gone)
    path.write_bytes(old)
    with caplog.at_level(logging.INFO, logger="newsletter.publisher"):
        second = send(publisher, after=first)
    assert COPIED not in caplog.text
    assert "readers forgotten at their request left out" in caplog.text
    assert set(ledger(publisher, second)) == {
        e for e in ledger(publisher, first) if not e.startswith("forgotten-reader-")}


def test_an_audience_read_while_its_file_changed_is_not_recorded(publisher: Publisher) -> None:
    """The file changes after its key was taken and before it is read: the audience holds
    the new row, but what it was read from is not the key, so nothing is recorded."""
    first = send_with_a_change_under_it(publisher, None)
    assert "late.reader@example.org" in ledger(publisher, first)
    assert recorded(publisher) == []
    second = send(publisher, after=first)  # read again: there is nothing to copy
    assert ledger(publisher, second) == ledger(publisher, first)
    assert recorded(publisher) == [second]


def test_a_copy_is_of_the_files_as_they_were_when_it_began(publisher: Publisher) -> None:
    first = send(publisher)
    second = send_with_a_change_under_it(publisher, first)  # copied, then the file changed
    assert ledger(publisher, second) == ledger(publisher, first)
    third = send(publisher, after=first)  # the files differ from the first issue's
    assert set(ledger(publisher, third)) == {*ledger(publisher, first), "late.reader@example.org"}
    assert recorded(publisher) == [first, third]


def send_with_a_change_under_it(publisher: Publisher, after: int | None) -> int:
    """Send an issue whose member file has a row added once its freeze holds the lease."""
    issue_id = queued(publisher, after)

    def change_the_file() -> None:  # once the freeze holds its lease, before it reads
        with weekly_file(publisher).open("a", encoding="utf-8") as out:
            out.write("late.reader@example.org,Late Reader,Truro\n")

    _, freeze = publisher._started(issue_id)
    assert freeze is not None
    freeze(change_the_file)
    assert publisher.send_issue(issue_id).final_state == "sent"
    return issue_id


# -- the key -------------------------------------------------------------------------------
def key_of(tmp_path: Path, **changes: object) -> SourceKey | None:
    files = [tmp_path / "a.csv", tmp_path / "b.csv"]
    if not files[0].exists():
        files[0].write_text("email\nann@example.org\n")
        files[1].write_text("email\nbo@example.org\n")
    arguments: dict[str, object] = {
        "paths": files, "list_id": "weekly", "keep": {"city"}, "var_dir": tmp_path / "var",
        "forgotten": {b"\x01" * 32}, "check_deliverability": False,
    }
    arguments.update(changes)
    return audience_key(**arguments)  # type: ignore[arg-type]


def test_the_key_changes_with_everything_that_shapes_the_audience(tmp_path: Path) -> None:
    same = key_of(tmp_path)
    assert same is not None and len(same.rules) == 64 and key_of(tmp_path) == same
    assert [(mark.name, mark.size) for mark in same.files] == [("a.csv", 22), ("b.csv", 21)]
    files = [tmp_path / "a.csv", tmp_path / "b.csv"]
    others = [
        key_of(tmp_path, paths=files[::-1]),  # the first file's repeats win
        key_of(tmp_path, paths=files[:1]),
        key_of(tmp_path, list_id="daily"),
        key_of(tmp_path, keep={"city", "name"}),
        key_of(tmp_path, keep=None),  # every column
        key_of(tmp_path, forgotten={b"\x01" * 32, b"\x02" * 32}),
        key_of(tmp_path, forgotten=set()),
    ]
    assert len({same, *others}) == len(others) + 1
    files[1].write_text("email\nbo@example.org\n ")  # one byte more
    grown = key_of(tmp_path)
    assert grown is not None and grown.rules == same.rules and grown.files != same.files


def test_a_list_checked_for_deliverability_has_no_key(tmp_path: Path) -> None:
    """Its verdicts depend on what DNS answers on the day."""
    assert key_of(tmp_path, check_deliverability=True) is None
