"""The index of member files (``lists.member_keys``): it finds what reading the file finds,
whatever the file's shape, and reads again only what changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.errors import ListError
from newsletter.lists.address import row_key
from newsletter.lists.member_keys import MemberKeys
from newsletter.lists.reader_data import rows_holding
from tests.preferences_support import spoil_in_place

#: A file with what a hand-edited member file may hold: a byte-order mark, Windows line
#: endings, comments and blank lines, names in quotes spanning lines and written in other
#: scripts (the rows after them start at other byte offsets than characters), an address
#: twice, a Unicode domain and a quoted local part.
TRICKY = (
    "\ufeffemail,name,city\r\n"
    "# members from the spring fair\r\n"
    "\r\n"
    'ann@example.org,"Ann\r\nof the Harbour",Kellmouth\r\n'
    "zoë.row@example.org,Zoë Ångström,Åre\r\n"
    "# a comment between rows\r\n"
    "Bob@Example.ORG,Bob,Kellmouth\r\n"
    'dai@example.org,"Dai ""the Quay"" Morgan",Porthcurno\r\n'
    "Kim.Lee@Bücher.Example,Kim Lee,Kellmouth\r\n"
    '"quoted local"@example.org,Quoted,Kellmouth\r\n'
    "ann@example.org,Ann again,Kellmouth\r\n"
    '"eve@example.org","Eve, of\r\n\r\nthe blank line",Kellmouth\r\n'
    ",no address,Kellmouth\r\n"
    "last@example.org,Last,Kellmouth"
)

ADDRESSES = [
    "ann@example.org", "bob@example.org", "dai@example.org", "kim.lee@xn--bcher-kva.example",
    '"quoted local"@example.org', "eve@example.org", "last@example.org",
]


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def test_it_finds_every_row_that_reading_the_file_finds(tmp_path: Path) -> None:
    path = write(tmp_path / "tricky.csv", TRICKY)
    members = MemberKeys()

    for email in [*ADDRESSES, "nobody@example.org"]:
        key = row_key(email)
        assert members.rows_holding(path, key, ("weekly",)) == rows_holding(
            path, key, ("weekly",)
        ), email
        assert members.holds([path], key) == bool(rows_holding(path, key, ())), email

    [first, again] = members.rows_holding(path, "ann@example.org")
    assert (first.line, first.row["name"]) == (4, "Ann\r\nof the Harbour")
    assert (again.line, again.row["name"]) == (12, "Ann again")
    [kim] = members.rows_holding(path, "kim.lee@xn--bcher-kva.example")
    assert kim.row["email"] == "Kim.Lee@Bücher.Example"


def test_a_unicode_domain_is_held_by_its_ascii_form_and_the_other_way_round(
    tmp_path: Path,
) -> None:
    unicode_row = write(tmp_path / "a.csv", "email\nKim.Lee@Bücher.Example\n")
    ascii_row = write(tmp_path / "b.csv", "email\nkim.lee@xn--bcher-kva.example\n")
    members = MemberKeys()

    assert members.holds([unicode_row], "kim.lee@xn--bcher-kva.example")
    assert members.holds([ascii_row], "KIM.LEE@xn--bcher-kva.example")
    assert not members.holds([unicode_row, ascii_row], "kim.lee@example.org")


def test_a_file_that_changes_is_read_again_and_one_that_does_not_is_not(tmp_path: Path) -> None:
    path = write(tmp_path / "weekly.csv", "email,name\nann@example.org,Ann\n")
    members = MemberKeys()
    first = members.index(path)

    assert members.index(path) is first
    with path.open("a", encoding="utf-8") as rows:
        rows.write("bob@example.org,Bob\n")

    assert members.index(path) is not first
    [bob] = members.rows_holding(path, "bob@example.org")
    assert (bob.line, bob.row["name"]) == (3, "Bob")


def test_a_warm_index_reads_the_readers_row_alone(tmp_path: Path) -> None:
    """Bytes of another row made unreadable behind the index's back (same size, inode and
    time): the reader's row is still read, as only it is."""
    path = write(tmp_path / "weekly.csv",
                 "email,name\nann@example.org,Ann\nbob@example.org,Bob\ncy@example.org,Cy\n")
    members = MemberKeys()
    members.index(path)

    spoil_in_place(path, b"Ann", b"\xff\xfe\xfd")  # a row before the reader's
    spoil_in_place(path, b"Cy", b"\xff\xfe")  # and one after it

    [bob] = members.rows_holding(path, "bob@example.org")
    assert bob.row["name"] == "Bob"
    with pytest.raises(ListError, match="not UTF-8"):
        rows_holding(path, "bob@example.org", ())


def test_lines_that_end_in_a_carriage_return_alone(tmp_path: Path) -> None:
    path = write(tmp_path / "old-mac.csv",
                 'email,name\r"ann@example.org","Ann\rSmith"\rbob@example.org,Bob\r')
    members = MemberKeys()

    for email in ("ann@example.org", "bob@example.org"):
        assert members.rows_holding(path, email) == rows_holding(path, email, ()), email
    assert members.rows_holding(path, "bob@example.org")[0].line == 4


def test_a_file_that_cannot_be_read_holds_no_one_for_a_sign_up_and_raises_for_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "weekly.csv"
    path.write_bytes(b"email,name\nann@example.org,Ann\nbob@example.org,\xff\n")
    members = MemberKeys()

    assert not members.holds([path], "carl@example.org")
    with pytest.raises(ListError, match="not UTF-8"):
        members.holds([path], "carl@example.org", strict=True)
    with pytest.raises(ListError, match="not UTF-8"):
        members.rows_holding(path, "ann@example.org")


def test_a_missing_file_holds_no_one_and_its_rows_cannot_be_read(tmp_path: Path) -> None:
    members = MemberKeys()
    missing = tmp_path / "weekly-signups.csv"

    assert not members.holds([missing], "ann@example.org", strict=True)
    with pytest.raises(ListError, match="cannot read"):
        members.rows_holding(missing, "ann@example.org")

