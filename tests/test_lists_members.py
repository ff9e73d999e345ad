"""Streaming member CSVs: valid rows out, each bad row named as file:line: reason."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from newsletter.errors import ListError
from newsletter.lists import MemberReader, Problem, Severity, iter_members
from newsletter.lists import members as members_module
from newsletter.lists.addresscache import AddressCache
from newsletter.models import Recipient, Subscriber


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_rows_become_subscribers_with_extra_columns_as_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.csv",
        "# a comment line\nEmail,Name,City\n"
        "zoe@Example.ORG,Zoë Ångström,Kellmouth\n\n"
        '"okafor@example.org","Okafor, Mary","St Ives"\n',
    )
    assert list(iter_members(path)) == [
        Subscriber("zoe@example.org", "Zoë Ångström", {"city": "Kellmouth"}),
        Subscriber("okafor@example.org", "Okafor, Mary", {"city": "St Ives"}),
    ]


def test_empty_cells_comments_and_line_breaks_in_values(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.csv",
        "email,name,note\n"
        ",,\n"  # a spreadsheet's empty row: nothing to report
        " , \t,\n"
        "# between records\n"
        'ann@example.org,Ann,"two\nlines"\n'
        "   \n"
        "bo@example.org,Bo,\n",
    )
    problems: list[Problem] = []
    members = list(iter_members(path, problems=problems))
    assert [(p.line, p.severity) for p in problems] == [(5, Severity.WARNING)]  # see below
    assert members == [
        Subscriber("ann@example.org", "Ann", {"note": "two\nlines"}),
        Subscriber("bo@example.org", "Bo", {"note": ""}),
    ]


def test_bad_rows_are_reported_by_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.csv",
        "email,name\n"
        "good@example.org,Good\n"
        "# the next row is deliberately broken\n"
        "nobody@,Broken\n"
        ",No address\n"
        "three@example.org,Too,Many\n"
        "last@example.org,Last\n",
    )
    problems: list[Problem] = []
    members = list(iter_members(path, problems=problems))

    assert [m.email for m in members] == ["good@example.org", "last@example.org"]
    assert [str(p) for p in problems] == [
        f"{path}:4: invalid address 'nobody@': There must be something after the @-sign.",
        f"{path}:5: no email address",
        f"{path}:6: expected 2 columns (email,name), found 3; "
        "put values that contain commas in double quotes",
    ]
    assert {p.severity for p in problems} == {Severity.ERROR}


def test_without_a_problem_list_the_first_bad_row_raises(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "email\nok@example.org\nbad@@example.org\n")
    with pytest.raises(ListError) as caught:
        list(iter_members(path))
    assert (caught.value.path, caught.value.line) == (path, 3)


def test_duplicates_are_dropped_case_insensitively_within_and_across_files(tmp_path: Path) -> None:
    first = write(
        tmp_path / "first.csv", "email,name\na@example.org,A\nb@example.org,B\nA@EXAMPLE.org,A2\n"
    )
    second = write(tmp_path / "second.csv", "name,email\nB again,b@Example.org\nC,c@example.org\n")
    reader = MemberReader([first, second])

    assert [s.email for s in reader] == ["a@example.org", "b@example.org", "c@example.org"]
    assert [str(p) for p in reader.problems] == [
        f"{first}:4: duplicate of line 2 (kept the first)",
        f"{second}:2: duplicate of first.csv:3 (kept the first)",
    ]
    assert all(p.severity == Severity.WARNING for p in reader.problems)
    assert (reader.counts.rows, reader.counts.members, reader.counts.duplicates) == (5, 3, 2)


def test_quoted_line_breaks_and_an_unclosed_quote(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.csv",
        'email,name\nx@example.org,"Line one\nline two"\n'
        'y@example.org,"Mo" Okafor\n'
        'z@example.org,"never closed\nlast@example.org,Last\n',
    )
    problems: list[Problem] = []
    members = list(iter_members(path, problems=problems))
    assert members == []  # a name cannot hold a line break: it goes in the To header
    assert [str(p) for p in problems] == [
        f"{path}:2: name holds a line feed (U+000A), which an email header cannot carry",
        f"{path}:4: cannot be split into columns: ',' expected after '\"'",
        f"{path}:5: a quoted value starts in this row and is never closed",
    ]


def test_a_byte_order_mark_and_windows_line_endings_are_fine(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "\ufeffemail,name\r\nw@example.org,Win\r\n")
    assert list(iter_members(path)) == [Subscriber("w@example.org", "Win")]


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("name,city\n", "header row: no 'email' column (found: name, city)"),
        ("email,name,Name\n", "header row: column 'name' appears twice"),
        ("email,First Name\n", "header row: column name 'first name' cannot be used in templates"),
        ("# only a comment\n", "no header row: the first line must name the columns"),
    ],
)
def test_header_problems_stop_the_file(tmp_path: Path, header: str, reason: str) -> None:
    path = write(tmp_path / "a.csv", header)
    reader = MemberReader([path])
    assert list(reader) == []
    [problem] = reader.problems
    assert problem.reason.startswith(reason)


def test_text_that_is_not_utf8_is_reported_and_the_next_file_still_read(tmp_path: Path) -> None:
    latin = write(tmp_path / "latin.csv", "email,name\nj@example.org,José\n", encoding="latin-1")
    fine = write(tmp_path / "fine.csv", "email\nk@example.org\n")
    reader = MemberReader([latin, fine])
    assert [s.email for s in reader] == ["k@example.org"]
    [problem] = reader.problems
    assert problem.path == latin
    assert "not UTF-8 text" in problem.reason


def test_missing_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    reader = MemberReader([tmp_path / "gone.csv"])
    assert reader.count().members == 0
    assert reader.problems[0].reason.startswith("cannot read:")


def test_count_only_pass_matches_a_full_read(tmp_path: Path) -> None:
    rows = "".join(f"user{i}@example.org,User {i}\n" for i in range(300))
    path = write(tmp_path / "a.csv", "email,name\n" + rows + "user7@example.org,again\nbad,row\n")
    reader = MemberReader([path])
    counts = reader.count()
    assert (counts.rows, counts.members, counts.invalid, counts.duplicates) == (302, 300, 1, 1)
    assert sum(1 for _ in reader.addresses()) == 300


# -- the address cache vouching for whole files ------------------------------------------------


class CountingCache(AddressCache):
    """The real cache, counting how often a single address is looked up."""

    lookups = 0

    def get(self, raw: str) -> str | None:
        self.lookups += 1
        return super().get(raw)


def read_with_cache(tmp_path: Path, *paths: Path) -> tuple[list[Subscriber], list[Problem], int]:
    cache = CountingCache(tmp_path / "cache" / "addresses.sqlite")
    reader = MemberReader(paths, cache=cache)
    try:
        members = list(reader)
    finally:
        cache.close()
    return members, reader.problems, cache.lookups


def test_a_file_read_clean_once_is_not_looked_up_address_by_address_again(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "email,name\nann@example.org,Ann\nbo@example.org,Bo\n")
    first, _, lookups = read_with_cache(tmp_path, path)
    assert lookups == 2
    again, problems, lookups = read_with_cache(tmp_path, path)
    assert (again, problems, lookups) == (first, [], 0)


def test_the_cache_stores_its_pending_verdicts_all_or_none(tmp_path: Path) -> None:
    cache = AddressCache(tmp_path / "addresses.sqlite")
    cache.put("ann@example.org", "ann@example.org")
    cache.put("bo@example.org", object())  # type: ignore[arg-type]  # cannot be stored
    with pytest.raises(sqlite3.Error):
        cache.flush()
    left = AddressCache(tmp_path / "addresses.sqlite")
    assert left.get("ann@example.org") is None  # not stored by a flush that failed
    left.close()
    cache._pending = {"ann@example.org": "ann@example.org"}
    cache.close()
    reopened = AddressCache(tmp_path / "addresses.sqlite")
    assert reopened.get("ann@example.org") == "ann@example.org"
    reopened.close()


def test_a_changed_file_is_checked_again_row_by_row(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "email,name\nann@example.org,Ann\n")
    read_with_cache(tmp_path, path)
    write(path, "email,name\nann@example.org,Ann\nnot-an-address,Bad\n")
    members, problems, lookups = read_with_cache(tmp_path, path)
    assert [m.email for m in members] == ["ann@example.org"]
    assert [str(p) for p in problems] == [f"{path}:3: invalid address 'not-an-address': "
                                          "An email address must have an @-sign."]
    assert lookups == 2
    _, problems_again, _ = read_with_cache(tmp_path, path)
    assert len(problems_again) == 1  # a file with a bad row is never vouched for


def test_a_file_whose_addresses_need_normalising_keeps_its_normalised_forms(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "a.csv", "email\nzoe@Example.ORG\n")
    read_with_cache(tmp_path, path)
    members, _, lookups = read_with_cache(tmp_path, path)  # replayed from the file's notes
    assert ([m.email for m in members], lookups) == (["zoe@example.org"], 0)


def test_without_dedupe_repeats_are_left_to_the_caller(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "email\nann@example.org\nANN@example.org\n")
    reader = MemberReader([path], dedupe=False)
    assert [m.email for m in reader] == ["ann@example.org", "ANN@example.org"]
    assert reader.counts.duplicates == 0 and reader.problems == []


# -- members as an issue's recipients -----------------------------------------------------------


def recipients_with_cache(
    tmp_path: Path, path: Path, keep: set[str] | None
) -> tuple[list[Recipient], int]:
    cache = CountingCache(tmp_path / "cache" / "addresses.sqlite")
    reader = MemberReader([path], cache=cache, dedupe=False)
    try:
        found = list(reader.recipients("weekly", keep))
    finally:
        cache.close()
    assert reader.counts.members == len(found)
    return found, cache.lookups


@pytest.mark.parametrize("keep", [None, {"city"}, set()])
def test_a_vouched_file_reads_as_the_same_recipients_as_a_checked_one(
    tmp_path: Path, keep: set[str] | None
) -> None:
    path = write(
        tmp_path / "a.csv",
        "# members\nEmail,Name,City,Note\n"
        "ann@example.org, Ann ,Kellmouth,\n"
        ",,,\n"
        "\n"
        "# between records\n"
        'bo@example.org,"Bo, Jr",St Ives,"two\n# not a comment"\n'
        "ann@example.org,Ann again,Port,\n"  # repeats are the ledger's to drop
        "cy@example.org,,,x\n",
    )
    checked, lookups = recipients_with_cache(tmp_path, path, keep)
    assert lookups == 4  # read row by row: this first read vouches for the file
    lean, lookups = recipients_with_cache(tmp_path, path, keep)
    assert (lean, lookups) == (checked, 0)
    every = {"city": "Kellmouth", "note": ""}
    assert checked[0] == Recipient(
        "ann@example.org", "Ann", every if keep is None else {"city": "Kellmouth"} if keep else {},
        "weekly",
    )
    assert [r.email for r in checked] == [
        "ann@example.org", "bo@example.org", "ann@example.org", "cy@example.org"
    ]
    assert checked[1].name == "Bo, Jr"
    if keep is None:
        assert checked[1].fields["note"] == "two\n# not a comment"


def test_a_unicode_domain_is_kept_in_ascii_and_a_unicode_local_part_is_refused(
    tmp_path: Path,
) -> None:
    rows = "email,name\nann@B\u00fccher.example,Ann\nz\u00fc@example.org,Zu\n"
    path = write(tmp_path / "a.csv", rows)
    problems: list[Problem] = []
    members = list(iter_members(path, problems=problems))

    assert [m.email for m in members] == ["ann@xn--bcher-kva.example"]
    assert [str(p) for p in problems] == [
        f"{path}:3: invalid address 'z\u00fc@example.org': "
        "Internationalized characters before the @-sign are not supported: '\u00fc'."
    ]


@pytest.mark.parametrize(
    "changed", ["email,name\nann@example.org\n", 'email,name\n"ann@example.org,Ann\n'],
    ids=["a short row", "an unclosed quote"],
)
def test_a_vouched_file_that_changes_as_it_is_read_is_an_error_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, changed: str
) -> None:
    path = write(tmp_path / "a.csv", "email,name\nann@example.org,Ann\n")
    recipients_with_cache(tmp_path, path, None)  # vouches for these bytes
    vouched = members_module.file_digest(path)
    write(path, changed)  # rewritten after its digest was taken: the lean path reads it
    monkeypatch.setattr(members_module, "file_digest", lambda _: vouched)

    with pytest.raises(ListError, match="changed while it was being read"):
        recipients_with_cache(tmp_path, path, None)


# -- values that cannot go in a header, and RFC 5321's length limits ---------------------------


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("Eve\r\nBcc: all@attacker.example", "a carriage return (U+000D)"),
        ("Eve\nMallory", "a line feed (U+000A)"),
        ("Eve\tMallory", "a tab (U+0009)"),
        ("Eve\x1b[31mMallory", "a control character (U+001B)"),
        ("Eve\u2028Mallory", "a line separator (U+2028)"),
        ("Eve\x85Mallory", "a control character (U+0085)"),
    ],
)
def test_a_name_that_cannot_go_in_the_to_header_is_an_invalid_row(
    tmp_path: Path, name: str, shown: str
) -> None:
    quoted = name.replace('"', '""')
    rows = f'email,name\nann@example.org,Ann\neve@example.org,"{quoted}"\n'
    path = write(tmp_path / "a.csv", rows)
    reader = MemberReader([path])
    assert [s.email for s in reader] == ["ann@example.org"]
    assert [str(p) for p in reader.problems] == [
        f"{path}:3: name holds {shown}, which an email header cannot carry"
    ]
    assert reader.problems[0].severity == Severity.ERROR
    assert (reader.counts.members, reader.counts.invalid) == (1, 1)


def test_a_column_with_a_line_break_is_a_warning_naming_the_column(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", 'email,name,city\nann@example.org,Ann,"Truro\nCornwall"\n')
    reader = MemberReader([path])
    assert [s.fields["city"] for s in reader] == ["Truro\nCornwall"]
    assert [(str(p), p.severity) for p in reader.problems] == [(
        f"{path}:2: city holds a line feed (U+000A): fine in the body, but a subject that "
        "uses the column cannot be sent to this member",
        Severity.WARNING,
    )]


def test_as_recipients_a_name_unfit_for_a_header_is_kept_for_the_send_to_fail_alone(
    tmp_path: Path,
) -> None:
    """A send records the failure, with its reason, on the member's ledger row."""
    path = write(tmp_path / "a.csv", 'email,name\nann@example.org,Ann\neve@example.org,"E\r\nB"\n')
    problems: list[Problem] = []
    reader = MemberReader([path], on_problem=problems.append, dedupe=False)
    assert [(r.email, r.name) for r in reader.recipients("weekly")] == [
        ("ann@example.org", "Ann"), ("eve@example.org", "E\r\nB")
    ]


@pytest.mark.parametrize(
    ("local", "domain", "reason"),
    [
        ("a" * 65, "example.org",
         "The email address is too long before the @-sign (1 character too many)."),
        ("a" * 64, "b" * 63 + "." + "c" * 63 + "." + "d" * 58 + ".org",
         "The email address is too long (1 character too many)."),
    ],
    ids=["local part of 65 octets", "address of 255 octets"],
)
def test_rfc_5321_length_limits_are_enforced(
    tmp_path: Path, local: str, domain: str, reason: str
) -> None:
    address = f"{local}@{domain}"
    path = write(tmp_path / "a.csv", f"email\nok@example.org\n{address}\n")
    problems: list[Problem] = []
    assert [s.email for s in iter_members(path, problems=problems)] == ["ok@example.org"]
    assert [str(p) for p in problems] == [f"{path}:3: invalid address {address!r}: {reason}"]


def test_the_longest_addresses_rfc_5321_allows_are_accepted(tmp_path: Path) -> None:
    longest_local = "a" * 64 + "@example.org"
    longest = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".org"
    assert len(longest) == 254
    path = write(tmp_path / "a.csv", f"email\n{longest_local}\n{longest}\n")
    assert [s.email for s in iter_members(path)] == [longest_local, longest]
