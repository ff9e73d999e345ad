"""De-duplicating a list's members a block of rows at a time (``SeenAddresses.firsts``):
the same first spellings, repeats and problem order as asking a row at a time."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import pytest

from newsletter.lists import MemberReader, members
from newsletter.lists.seen import SeenAddresses


def test_firsts_names_where_each_repeat_was_first_read() -> None:
    earlier = {"old@example.org": (0, 7)}
    with closing(SeenAddresses(earlier.get)) as seen:
        assert seen.firsts([("a@example.org", 1, 2), ("b@example.org", 1, 3)]) == [None, None]
        assert seen.firsts([
            ("c@example.org", 1, 4),
            ("a@example.org", 1, 5),  # read in the block before
            ("c@example.org", 1, 6),  # read earlier in this block
            ("old@example.org", 1, 8),  # read in a file this read starts after
            ("d@example.org", 2, 2),
        ]) == [None, (1, 2), (1, 4), (0, 7), None]
        assert seen.firsts([("d@example.org", 2, 9)]) == [(2, 2)]
        assert seen.firsts([]) == []


@pytest.mark.parametrize("block", [1, 2, 3, 500])
def test_problems_come_in_line_order_whatever_the_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    """Repeats, refused rows and warnings, in blocks of every size: reported in the order of
    their lines, and the first spelling kept, across the list's files."""
    monkeypatch.setattr(members, "LOOK_AHEAD", block)
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    one.write_text(
        "email,name,city\n"
        "ann@example.org,Ann,Port\n"
        "ANN@example.org,Ann again,Port\n"
        "not-an-address,Bad,Port\n"
        "bo@example.org,Bo,\"St\nIves\"\n"
        "bo@example.org,Bo again,Port\n"
    )
    two.write_text("email,name,city\ncy@example.org,Cy,Port\nAnn@Example.org,Ann,Port\n")
    reader = MemberReader([one, two])
    found = [(m.path.name, m.line, m.subscriber.email) for m in reader.members()]
    assert found == [
        ("one.csv", 2, "ann@example.org"), ("one.csv", 5, "bo@example.org"),
        ("two.csv", 2, "cy@example.org"),
    ]
    assert [(p.path.name, p.line, p.reason.split(" (")[0].split(":")[0])
            for p in reader.problems] == [
        ("one.csv", 3, "duplicate of line 2"),
        ("one.csv", 4, "invalid address 'not-an-address'"),
        ("one.csv", 5, "city holds a line feed"),
        ("one.csv", 7, "duplicate of line 5"),
        ("two.csv", 3, "duplicate of one.csv"),
    ]
    assert (reader.counts.members, reader.counts.invalid, reader.counts.duplicates) == (3, 1, 3)
