"""An issue's audience copied from an earlier issue frozen from the same files
(``store.audience_sources``), on SQLite and PostgreSQL: the same members in the same
batches, today's suppressions applied, and a source used only while it is whole."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from itertools import count
from typing import Any

import pytest
from sqlalchemy import delete, select

from newsletter.models import Recipient, SuppressionReason
from newsletter.store import (
    Store,
    audience,
    audience_origins,
    audience_reuse,
    audience_sources,
    suppressions,
)
from newsletter.store.tables import audience_sources as sources_table
from newsletter.store.tables import batches, recipients
from newsletter.store.tables import issues as issues_table
from tests.test_freeze import _dead_owner, _lease
from tests.test_freeze import _issue as new_issue

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
KEY = audience_sources.SourceKey("k" * 64, (audience_sources.FileMark("weekly.csv", 40, "d" * 64),))


def members(*, repeat: bool = True) -> list[Recipient]:
    """Thirty members in no address order, one written in capitals, one repeated."""
    found = [Recipient(f"r{(i * 7) % 30:02d}@example.org", f"Reader {i}", {"city": f"C{i}"},
                       "weekly") for i in range(30)]
    found[4] = Recipient("R28@Example.ORG", "Capitals", {"city": "Truro"}, "weekly")
    return [*found, Recipient("r03@example.org", "Again", {}, "weekly")] if repeat else found


def provenance(key: audience_sources.SourceKey | None = KEY) -> audience.Provenance:
    return audience.Provenance("weekly", lambda: key)


def freeze(store: Store, issue_id: int,
           source: Iterable[Recipient] | audience_sources.AudienceSource
           | audience_sources.Continued, **options: object) -> audience.FreezeCounts | None:
    settings: dict[str, object] = {"chunk_size": 6, **options}
    return audience.freeze_audience(store.engine, issue_id, source, batch_size=3, at=NOW,
                                    provenance=provenance(), **settings)  # type: ignore[arg-type]


def suppress(store: Store, email: str, scope: str = "*") -> None:
    with store.engine.begin() as conn:
        suppressions.add(conn, email, SuppressionReason.UNSUBSCRIBED, scope=scope, at=NOW)


def found(store: Store, key: audience_sources.SourceKey = KEY,
          ) -> audience_sources.AudienceSource | None:
    with store.engine.connect() as conn:
        return audience_sources.find(conn, "weekly", key)


def ledger(store: Store, issue_id: int) -> dict[str, tuple[object, ...]]:
    """Each row as a send reads it: spelling, name, fields, status."""
    columns = recipients.c
    stmt = select(columns.email, columns.email_as_written, columns.name, columns.fields,
                  columns.status).where(columns.issue_id == issue_id)
    with store.engine.connect() as conn:
        return {row[0]: tuple(row[1:]) for row in conn.execute(stmt)}


def batch_members(store: Store, issue_id: int) -> list[frozenset[str]]:
    """Who is in each batch, in batch order, and every batch's size as what it holds."""
    with store.engine.connect() as conn:
        held = conn.execute(
            select(batches.c.seq, batches.c.size, recipients.c.email)
            .join(recipients, recipients.c.batch_id == batches.c.id)
            .where(batches.c.issue_id == issue_id)
            .order_by(batches.c.seq)
        ).all()
        empty = conn.execute(select(batches.c.id).where(
            batches.c.issue_id == issue_id, batches.c.size == 0)).all()
    assert not empty
    groups: dict[int, set[str]] = {}
    sizes: dict[int, int] = {}
    for seq, size, email in held:
        groups.setdefault(seq, set()).add(email)
        sizes[seq] = size
    assert all(len(groups[seq]) == sizes[seq] for seq in groups)
    return [frozenset(groups[seq]) for seq in sorted(groups)]


def test_a_copy_has_the_same_members_in_the_same_batches_with_todays_suppressions(
    store: Store,
) -> None:
    suppress(store, "r10@example.org")
    first = new_issue(store)
    assert freeze(store, first, members(repeat=False)) == audience.FreezeCounts(30, 0, 1, 29, 10)
    source = found(store)
    assert source is not None and (source.issue_id, source.rows, source.duplicates) == (
        first, 30, 0)
    # Between the issues one reader is let back in, another leaves every list, one leaves
    # this list and one leaves another list only.
    with store.engine.begin() as conn:
        suppressions.remove(conn, "r10@example.org")
    suppress(store, "r21@example.org")
    suppress(store, "r22@example.org", scope="weekly")
    suppress(store, "r23@example.org", scope="daily")

    second = new_issue(store)
    assert freeze(store, second, source) == audience.FreezeCounts(30, 0, 2, 28, 10)
    before, after = ledger(store, first), ledger(store, second)
    assert after["r28@example.org"] == ("R28@Example.ORG", "Capitals", {"city": "Truro"},
                                        "queued")
    assert before["r10@example.org"][3] == "suppressed" and after["r10@example.org"][3] == "queued"
    assert after["r21@example.org"][3] == after["r22@example.org"][3] == "suppressed"
    assert after["r23@example.org"][3] == "queued"
    moved = {"r10@example.org", "r21@example.org", "r22@example.org"}
    assert {e: after[e] for e in set(before) - moved} == {e: before[e] for e in set(before) - moved}
    assert len(after) == 30
    # The same batches, but for the readers whose suppression changed.
    assert [b - moved for b in batch_members(store, second)] == [
        b - moved for b in batch_members(store, first)]
    assert found(store).issue_id == second  # type: ignore[union-attr]  # the newest source


def test_a_copy_reports_the_repeats_its_source_dropped(store: Store) -> None:
    first = new_issue(store)
    assert freeze(store, first, members()) == audience.FreezeCounts(31, 1, 0, 30, 11)
    source = found(store)
    assert source is not None and (source.rows, source.duplicates) == (30, 1)
    second = new_issue(store)
    # 31 places cut into 11 batches, one with a gap; the copy's 30 fill 10.
    assert freeze(store, second, source) == audience.FreezeCounts(31, 1, 0, 30, 10)
    assert ledger(store, second) == ledger(store, first)
    assert ledger(store, second)["r03@example.org"][1] != "Again"  # the first spelling won


def test_a_source_missing_a_row_or_not_frozen_is_not_copied(store: Store) -> None:
    first = new_issue(store)
    freeze(store, first, members())
    second = new_issue(store)
    freeze(store, second, members())
    assert found(store).issue_id == second  # type: ignore[union-attr]
    with store.engine.begin() as conn:  # a row gone from the newest: the one before serves
        conn.execute(delete(recipients).where(recipients.c.issue_id == second,
                                              recipients.c.email == "r05@example.org"))
    assert found(store).issue_id == first  # type: ignore[union-attr]  # the newest whole one
    with store.engine.begin() as conn:
        conn.execute(delete(sources_table).where(sources_table.c.issue_id == second))
    assert found(store).issue_id == first  # type: ignore[union-attr]
    assert found(store, audience_sources.SourceKey("another key", KEY.files)) is None
    assert found(store, audience_sources.SourceKey(KEY.rules, ())) is None  # other files


def test_nothing_is_recorded_when_the_files_changed_while_they_were_read(store: Store) -> None:
    issue_id = new_issue(store)
    audience.freeze_audience(store.engine, issue_id, members(), batch_size=3, at=NOW,
                             provenance=provenance(None))
    assert found(store) is None
    with store.engine.connect() as conn:
        assert conn.execute(select(sources_table)).all() == []


@pytest.mark.parametrize("copying", [False, True])
def test_a_taken_over_freeze_finishes_the_audience_and_records_nothing(
    store: Store, copying: bool, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker died mid-way, reading the list or copying an earlier issue; another takes
    over the same way, and the audience is whole, each member once, each batch's size what
    it holds. What the rows were read from is no longer one thing: nothing is recorded."""
    first = new_issue(store)
    freeze(store, first, members())
    source = found(store)
    assert source is not None
    second = new_issue(store)
    doomed: Iterable[Recipient] | audience_sources.AudienceSource
    if copying:
        pages, real = count(1), audience_reuse._insert_page

        def dies_on_the_third_page(*args: Any) -> int:
            if next(pages) == 3:
                raise RuntimeError("killed")
            return real(*args)

        monkeypatch.setattr(audience_reuse, "_insert_page", dies_on_the_third_page)
        doomed, committed = source, 12  # two pages of 6
    else:
        doomed, committed = dies_in_the_third_run(), 18  # runs of 6 and 12
    with pytest.raises(RuntimeError):
        freeze(store, second, doomed, lease=_lease(_dead_owner()))
    assert len(ledger(store, second)) == committed
    monkeypatch.undo()

    counts = freeze(store, second, source if copying else members(), lease=_lease("me"))
    assert counts is not None and (counts.members, counts.duplicates) == (31, committed + 1)
    assert ledger(store, second) == ledger(store, first)
    assert sum(map(len, batch_members(store, second))) == 30
    assert found(store).issue_id == first  # type: ignore[union-attr]


def dies_in_the_third_run() -> Iterator[Recipient]:
    yield from members()[:18]
    raise RuntimeError("killed")


def test_a_copy_on_sqlite_holds_the_write_lock_before_it_reads_a_page(
    store: Store, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SQLite cannot let a transaction that has read write once another has committed
    meanwhile: it answers "database is locked" at once, whatever the busy timeout. So a
    page is read only once the copy holds the write lock, and a sender's write waits."""
    if store.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL has no single writer")
    first = new_issue(store)
    freeze(store, first, members())
    source = found(store)
    assert source is not None
    second = new_issue(store)
    real, path = audience_reuse._page_bounds, store.engine.url.database
    kept_out: list[bool] = []

    def a_sender_tries_to_write(*args: Any) -> tuple[int, int, int]:
        bounds = real(*args)
        sender = sqlite3.connect(str(path), timeout=0, isolation_level=None)
        try:
            sender.execute("BEGIN IMMEDIATE")
            sender.execute("UPDATE issues SET subject = subject WHERE id = ?", (first,))
            sender.execute("COMMIT")
            kept_out.append(False)
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc)
            kept_out.append(True)
        finally:
            sender.close()
        return bounds

    monkeypatch.setattr(audience_reuse, "_page_bounds", a_sender_tries_to_write)
    counts = freeze(store, second, source)
    assert counts is not None and counts.queued == 30
    assert kept_out == [True] * 6  # five pages of six, and the empty one that ends it


def test_a_source_whose_rows_are_interleaved_with_another_issue_is_copied_whole(
    store: Store,
) -> None:
    """Two issues frozen at once write their rows between each other's: a page of the
    source then has gaps in its ids, and its rows are numbered rather than placed by id."""
    first, other = new_issue(store), new_issue(store)

    def members_with_another_freeze_between() -> Iterator[Recipient]:
        for number, member in enumerate(members(repeat=False)):
            if number in (6, 19):  # between two chunks of the first issue's freeze
                audience.freeze_audience(
                    store.engine, other, [Recipient(f"o{number}-{n}@example.org", "", {},
                                                    "weekly") for n in range(4)],
                    batch_size=3, at=NOW, lease=_lease("other"))
                with store.engine.begin() as conn:  # let it freeze once more
                    conn.execute(issues_table.update().where(issues_table.c.id == other)
                                 .values(audience_frozen=0))
            yield member

    freeze(store, first, members_with_another_freeze_between())
    source = found(store)
    assert source is not None and source.last_row - source.first_row + 1 > source.rows
    second = new_issue(store)
    # Pages of 9 against the first issue's chunks of 6: some pages span a gap.
    copied = freeze(store, second, source, chunk_size=9)
    assert copied == audience.FreezeCounts(30, 0, 0, 30, 10)
    assert ledger(store, second) == ledger(store, first)
    assert batch_members(store, second) == batch_members(store, first)


def test_an_address_suppressed_for_every_list_and_for_this_one_is_one_row(store: Store) -> None:
    first = new_issue(store)
    freeze(store, first, members(repeat=False))
    source = found(store)
    assert source is not None
    suppress(store, "r07@example.org")
    suppress(store, "r07@example.org", scope="weekly")
    second = new_issue(store)
    assert freeze(store, second, source) == audience.FreezeCounts(30, 0, 1, 29, 10)
    assert ledger(store, second)["r07@example.org"][3] == "suppressed"


# -- a copy continued by the rows appended since ---------------------------------------------
def appended() -> list[Recipient]:
    """Rows appended to the list's last file: a new member, a repeat of one copied (the copy's
    spelling wins), one suppressed since, and a repeat among themselves."""
    return [Recipient("new1@example.org", "New One", {"city": "Truro"}, "weekly"),
            Recipient("R05@example.org", "Again", {}, "weekly"),
            Recipient("new2@example.org", "New Two", {}, "weekly"),
            Recipient("NEW1@example.org", "Twice", {}, "weekly")]


def test_a_copy_continued_by_the_rows_appended_since(store: Store) -> None:
    first = new_issue(store)
    freeze(store, first, members())
    source = found(store)
    assert source is not None
    suppress(store, "new2@example.org")
    second = new_issue(store)
    counts = freeze(store, second, audience_sources.Continued(source, appended()))
    # 30 copied in 10 batches (and the repeat the source dropped), then the 4 appended: two
    # repeats dropped, one suppressed, one queued in an 11th batch.
    assert counts == audience.FreezeCounts(35, 3, 1, 31, 11)
    rows = ledger(store, second)
    assert {e: rows.pop(e) for e in ("new1@example.org", "new2@example.org")} == {
        "new1@example.org": (None, "New One", {"city": "Truro"}, "queued"),
        "new2@example.org": (None, "New Two", {}, "suppressed")}
    assert rows == ledger(store, first)
    plain = new_issue(store)  # the same source copied alone: the same batches, less one
    freeze(store, plain, source)
    assert batch_members(store, second) == [*batch_members(store, plain),
                                            frozenset({"new1@example.org"})]
    with store.engine.connect() as conn:  # recorded: the next issue copies this one
        [continued, *_] = audience_sources.candidates(conn, "weekly", KEY.rules)[1:]
    assert continued.issue_id == second
    assert (continued.rows, continued.duplicates) == (32, 3)
    assert origin_of(store, second) == audience_origins.FrozenAudience(
        audience_origins.AudienceOrigin(first), 32, 3)
    assert origin_of(store, first) == audience_origins.FrozenAudience(
        audience_origins.AudienceOrigin(), 30, 1)


def test_a_taken_over_continued_copy_finishes_whole(store: Store) -> None:
    """The worker died reading the appended rows, after the copy; the next one copies again
    (every row there already) and reads them all."""
    first = new_issue(store)
    freeze(store, first, members())
    source = found(store)
    assert source is not None
    second = new_issue(store)

    def dies_after_one() -> Iterator[Recipient]:
        yield appended()[0]
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        freeze(store, second, audience_sources.Continued(source, dies_after_one()),
               lease=_lease(_dead_owner()), chunk_size=3)
    assert len(ledger(store, second)) == 30
    counts = freeze(store, second, audience_sources.Continued(source, appended()),
                    lease=_lease("me"))
    assert counts is not None and (counts.members, counts.queued) == (35, 2)  # this run's
    assert set(ledger(store, second)) == {*ledger(store, first), "new1@example.org",
                                          "new2@example.org"}
    assert found(store).issue_id == first  # type: ignore[union-attr]  # nothing recorded
    assert origin_of(store, second) == audience_origins.FrozenAudience(  # nor counted
        audience_origins.AudienceOrigin(first), None, None)


def origin_of(store: Store, issue_id: int) -> audience_origins.FrozenAudience | None:
    with store.engine.connect() as conn:
        return audience_origins.of(conn, issue_id)
