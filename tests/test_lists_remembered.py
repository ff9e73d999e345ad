"""A member file with bad rows is remembered too: refused rows and corrected addresses are
replayed from notes keyed on the file's bytes, and a send logs one line per file for them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from newsletter.config import Settings
from newsletter.lists import MemberReader, Problem
from newsletter.lists.addresscache import AddressCache
from newsletter.models import Recipient
from newsletter.publisher import Publisher
from newsletter.store import Store

#: Comments, blank and empty rows, a quoted line break, and each kind of row a note replays:
#: refused addresses, a missing address, a wrong column count, a domain not in normal form.
MIXED = (
    "# members\nEmail,Name,City\n"
    "ann@example.org,Ann,Kellmouth\n"
    "not-an-address,Bad,Port\n"
    ",,\n"
    "\n"
    '"bo@example.org",Bo,"St\nIves"\n'
    ",No address,Port\n"
    "cy@example.org,Cy\n"
    "# between\n"
    "dee@Example.ORG,Dee,Port\n"
    "eve@@example.org,Eve,Port\n"
    "fay@example.org,Fay,Port\n"
)


class CountingCache(AddressCache):
    """The real cache, counting look-ups of single addresses (accepted or refused)."""

    lookups = 0

    def get(self, raw: str) -> str | None:
        self.lookups += 1
        return super().get(raw)

    def refusal(self, raw: str) -> str | None:
        self.lookups += 1
        return super().refusal(raw)


def as_recipients(tmp_path: Path, path: Path) -> tuple[list[Recipient], list[Problem], int, tuple]:
    cache = CountingCache(tmp_path / "cache" / "addresses.sqlite")
    reader = MemberReader([path], cache=cache, dedupe=False)
    try:
        found = list(reader.recipients("weekly", None))
    finally:
        cache.close()
    counts = reader.counts
    return found, reader.problems, cache.lookups, (counts.rows, counts.members, counts.invalid)


def test_a_file_with_bad_rows_is_read_the_lean_way_the_second_time(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text(MIXED)
    checked = as_recipients(tmp_path, path)
    assert checked[2] > 0  # the first read checks each row
    lean = as_recipients(tmp_path, path)
    assert lean[2] == 0  # no address looked up again, refused or corrected
    assert lean[:2] == checked[:2] and lean[3] == checked[3] == (8, 4, 4)
    assert [r.email for r in lean[0]] == [
        "ann@example.org", "bo@example.org", "dee@example.org", "fay@example.org"
    ]
    assert [(p.line, p.reason.split(":")[0]) for p in lean[1]] == [
        (4, "invalid address 'not-an-address'"),
        (9, "no email address"),
        (10, "expected 3 columns (email,name,city), found 2"),
        (13, "invalid address 'eve@@example.org'"),
    ]


def test_a_check_of_a_file_with_notes_replays_them(tmp_path: Path) -> None:
    """``lists check`` and ``lists show`` (every row checked, repeats reported) take a
    remembered file's verdicts from its notes too: no address is looked up, and what they
    report is what the first check reported."""
    path = tmp_path / "a.csv"
    path.write_text(MIXED + "Ann@Example.org,Ann again,Port\n")

    def checked() -> tuple[list[object], list[Problem], int, object]:
        cache = CountingCache(tmp_path / "cache" / "addresses.sqlite")
        reader = MemberReader([path], cache=cache)
        try:
            found = [(m.subscriber, m.line) for m in reader.members()]
        finally:
            cache.close()
        return found, reader.problems, cache.lookups, reader.counts

    first, again = checked(), checked()
    assert first[2] > 0 and again[2] == 0
    assert again[0] == first[0] and again[1] == first[1] and again[3] == first[3]
    assert [(line, s.email) for s, line in again[0]] == [  # type: ignore[attr-defined]
        (3, "ann@example.org"), (7, "bo@example.org"), (12, "dee@example.org"),
        (14, "fay@example.org"),
    ]
    assert [p.line for p in again[1]] == [4, 7, 9, 10, 13, 15]  # 7: a line break in a city
    assert again[1][-1].reason == "duplicate of line 3 (kept the first)"


def test_a_refused_address_is_remembered_with_its_reason(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("email\nnot-an-address\n")
    first = MemberReader([path], cache=AddressCache(tmp_path / "c.sqlite"))
    list(first)
    assert first.cache is not None
    first.cache.close()
    cache = AddressCache(tmp_path / "c.sqlite")
    assert cache.refusal("not-an-address") == (
        "invalid address 'not-an-address': An email address must have an @-sign."
    )
    again = MemberReader([path], cache=cache)  # the checked path, as `lists show` reads
    list(again)
    cache.close()
    assert [str(p) for p in again.problems] == [str(p) for p in first.problems]


def test_a_file_changed_by_one_byte_is_checked_again(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text(MIXED)
    as_recipients(tmp_path, path)
    as_recipients(tmp_path, path)  # replayed from the notes
    path.write_text(MIXED.replace("eve@@", "eve@."))
    found, problems, lookups, _ = as_recipients(tmp_path, path)
    assert lookups > 0
    assert problems[-1].line == 13 and "'eve@.example.org'" in problems[-1].reason
    assert len(found) == 4


@pytest.fixture
def publisher(settings: Settings) -> Publisher:
    return Publisher(settings, Store.open(settings.database_url))


def test_a_send_logs_one_line_per_file_with_the_count_of_bad_rows(
    publisher: Publisher, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    mailing_list = publisher.config.list("weekly")
    (path,) = [settings.subscribers_dir / p for p in mailing_list.members_files]
    with path.open("a") as out:
        out.write("".join(f"bad{i}@@example.org,Bad,Port\n" for i in range(3)))
    for _ in range(2):  # the first read checks every row, the second replays its notes
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="newsletter.publisher"):
            members = list(publisher.audience(mailing_list))
        assert members
        assert [r.getMessage().split(" (the first")[0] for r in caplog.records] == [
            f"{path}: 3 invalid rows skipped"
        ]
    publisher.store.close()
