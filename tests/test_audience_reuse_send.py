"""A send copies the audience of the last issue to a list read from the very same files,
and reads the list again whenever anything that shapes its audience has changed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from newsletter.config import Settings
from newsletter.lists.audience_key import audience_key
from newsletter.lists.forget import forget
from newsletter.publisher import Publisher
from newsletter.store import Store
from newsletter.store import issues as issue_store
from newsletter.store.tables import audience_sources, recipients

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
    columns = recipients.c
    stmt = select(columns.email, columns.email_as_written, columns.name, columns.fields,
                  columns.status).where(columns.issue_id == issue_id)
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


def test_a_changed_member_file_is_read_again_and_then_copied(
    publisher: Publisher, caplog: pytest.LogCaptureFixture,
) -> None:
    first = send(publisher)
    with weekly_file(publisher).open("a", encoding="utf-8") as out:
        out.write("new.reader@example.org,New Reader,Truro\n")
    with caplog.at_level(logging.INFO, logger="newsletter.publisher"):
        second = send(publisher, after=first)
        assert COPIED not in caplog.text
        third = send(publisher, after=first)
    assert f"issue {third}: {COPIED} {second}" in caplog.text
    assert set(ledger(publisher, second)) == set(ledger(publisher, first)) | {
        "new.reader@example.org"}
    assert ledger(publisher, third) == ledger(publisher, second)


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
def key_of(tmp_path: Path, **changes: object) -> str:
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
    assert len(same) == 64 and key_of(tmp_path) == same
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
    assert key_of(tmp_path) != same


def test_a_list_checked_for_deliverability_has_no_key(tmp_path: Path) -> None:
    """Its verdicts depend on what DNS answers on the day."""
    assert key_of(tmp_path, check_deliverability=True) == ""
