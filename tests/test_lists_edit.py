"""Editing member files: minimal, atomic, and refused when the file changed underneath."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.errors import ListError
from newsletter.lists import append_members, remove_member
from newsletter.models import Subscriber

APOSTROPHE = "\u2019"  # typographic, as in real names
ORIGINAL = (
    "# Members of the test list.\n"
    "city,email,name\n"
    "Kellmouth,zoe@example.org,Zoë Ångström\n"
    "# a comment between rows stays where it is\n"
    'Truro,jose@example.org,"Núñez, José"\n'
    f"Falmouth,SIOBHAN@example.org,Siobhán O{APOSTROPHE}Connell\n"
)


@pytest.fixture
def members(tmp_path: Path) -> Path:
    path = tmp_path / "members.csv"
    path.write_bytes(ORIGINAL.encode("utf-8"))
    return path


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_append_keeps_every_byte_and_follows_the_header_order(members: Path) -> None:
    added = append_members(
        members, [Subscriber("new@example.org", f"Ann, O{APOSTROPHE}Neil", {"city": "Penzance"})]
    )
    assert added == 1
    assert (
        members.read_text(encoding="utf-8")
        == ORIGINAL + f'Penzance,new@example.org,"Ann, O{APOSTROPHE}Neil"\n'
    )
    assert leftovers(members.parent) == []


def test_append_after_a_last_line_without_newline_and_with_crlf(tmp_path: Path) -> None:
    path = tmp_path / "crlf.csv"
    path.write_bytes(b"email,name\r\na@example.org,A")
    append_members(path, [Subscriber("b@example.org", "B")])
    assert path.read_bytes() == b"email,name\r\na@example.org,A\r\nb@example.org,B\r\n"


def test_a_value_starting_with_hash_is_quoted_so_it_is_not_a_comment(tmp_path: Path) -> None:
    path = tmp_path / "hash.csv"
    path.write_text("email,name\n", encoding="utf-8")
    append_members(path, [Subscriber("#news@example.org", "Hash")])
    assert path.read_text(encoding="utf-8") == 'email,name\n"#news@example.org","Hash"\n'


def test_a_field_without_a_column_is_refused_and_nothing_changes(members: Path) -> None:
    with pytest.raises(ListError, match=r"has no column for 'zip' \(columns: city,email,name\)"):
        append_members(members, [Subscriber("x@example.org", "", {"zip": "KM1"})])
    assert members.read_text(encoding="utf-8") == ORIGINAL
    assert leftovers(members.parent) == []


def test_remove_drops_only_that_address_case_insensitively(members: Path) -> None:
    assert remove_member(members, "siobhan@example.org") == [6]
    assert remove_member(members, "jose@example.org") == [5]
    assert members.read_text(encoding="utf-8") == (
        "# Members of the test list.\n"
        "city,email,name\n"
        "Kellmouth,zoe@example.org,Zoë Ångström\n"
        "# a comment between rows stays where it is\n"
    )


def test_removing_an_absent_address_leaves_the_file_untouched(members: Path) -> None:
    before = members.stat().st_mtime_ns
    assert remove_member(members, "nobody@example.org") == []
    assert members.stat().st_mtime_ns == before
    assert leftovers(members.parent) == []


def test_permissions_survive_an_edit(members: Path) -> None:
    members.chmod(0o640)
    append_members(members, [Subscriber("p@example.org")])
    assert stat.S_IMODE(members.stat().st_mode) == 0o640


def test_a_file_changed_during_the_edit_is_not_overwritten(members: Path) -> None:
    other_editor = "Kellmouth,late@example.org,Added meanwhile\n"

    def rows() -> Iterator[Subscriber]:
        # Another program appends while this edit is in progress (after the original was read).
        with members.open("a", encoding="utf-8") as handle:
            handle.write(other_editor)
        yield Subscriber("mine@example.org", "Mine", {"city": "Truro"})

    with pytest.raises(ListError) as caught:
        append_members(members, rows())
    assert "changed by someone else while this edit was being made; nothing was written" in str(
        caught.value
    )
    assert members.read_text(encoding="utf-8") == ORIGINAL + other_editor
    assert leftovers(members.parent) == []


def test_a_same_size_rewrite_with_the_old_mtime_is_still_detected(members: Path) -> None:
    info = members.stat()

    def rows() -> Iterator[Subscriber]:
        swapped = ORIGINAL.replace("Truro", "Turo!")  # same length, different content
        members.write_text(swapped, encoding="utf-8")
        os.utime(members, ns=(info.st_atime_ns, info.st_mtime_ns))
        yield Subscriber("mine@example.org")

    with pytest.raises(ListError, match="changed by someone else"):
        append_members(members, rows())
    assert "Turo!" in members.read_text(encoding="utf-8")


def test_a_name_without_a_name_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bare.csv"
    path.write_text("email\n", encoding="utf-8")
    with pytest.raises(ListError, match=r"has no column for 'name' \(columns: email\)"):
        append_members(path, [Subscriber("x@example.org", "Named")])
    assert path.read_text(encoding="utf-8") == "email\n"


def test_a_name_that_cannot_go_in_a_header_is_refused_and_nothing_changes(
    members: Path,
) -> None:
    with pytest.raises(ListError, match=r"name holds a line feed \(U\+000A\), which an email "
                                        "header cannot carry"):
        append_members(members, [Subscriber("x@example.org", "Eve\nBcc: all@attacker.example")])
    assert members.read_text(encoding="utf-8") == ORIGINAL
    assert leftovers(members.parent) == []
