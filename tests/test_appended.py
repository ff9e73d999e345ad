"""Rows appended to a member file since it was read: ``lists.appended`` finds where they
begin, and reading from there gives what reading the whole file gives for those rows:
the same recipients, the same problems at the same lines."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from newsletter.lists.addresscache import AddressCache, opened_cache
from newsletter.lists.appended import TailStart, appended_since
from newsletter.lists.audience_key import file_mark
from newsletter.lists.problems import Problem
from newsletter.lists.reading import stream_recipients
from newsletter.models import Recipient

#: A file that reads clean: a byte-order mark, comments, a blank line, a quoted value
#: holding a comma and one running over two lines (in a column that is not the name).
OLD = [
    "\ufeffemail,name,city",
    "# members",
    "ann@example.org,Ann,Truro",
    "",
    'bo@example.org,"Bo, Jr",Kellmouth',
    'cy@example.org,Cy,"Old',
    'Town"',
]
#: Rows appended: a comment, a repeat, an invalid address, a row short of a column, a
#: value over two lines, and a new member.
NEW = [
    "# appended",
    "ANN@example.org,Ann Again,Truro",
    "not-an-address,Nobody,Truro",
    "dee@example.org,Dee",
    'eve@example.org,Eve,"New',
    'Quay"',
    "fay@example.org,Fay,Falmouth",
]


def read(path: Path, var_dir: Path, after: TailStart | None = None,
         ) -> tuple[list[Recipient], list[Problem]]:
    problems: list[Problem] = []
    found = list(stream_recipients([path], "weekly", var_dir=var_dir, check_deliverability=False,
                                   on_problem=problems.append, after=after))
    return found, problems


def write(path: Path, lines: list[str], newline: str, *, mode: str = "w") -> None:
    with path.open(mode, encoding="utf-8", newline="") as out:
        out.write("".join(line + newline for line in lines))


def cache(var_dir: Path) -> AbstractContextManager[AddressCache]:
    return opened_cache(var_dir)


@pytest.mark.parametrize("newline", ["\n", "\r\n", "mixed"])
def test_the_rows_appended_read_as_they_do_in_the_whole_file(tmp_path: Path, newline: str) -> None:
    """"mixed": a lone carriage return ends some lines (a line of its own when read)."""
    path, var_dir = tmp_path / "members.csv", tmp_path / "var"
    ends = ["\r", "\n", "\r\n"] if newline == "mixed" else [newline]
    text = "".join(line + ends[at % len(ends)] for at, line in enumerate(OLD[:-1]))
    path.write_bytes((text + OLD[-1] + "\n").encode())
    before, problems = read(path, var_dir)
    assert len(before) == 3 and not problems
    then = file_mark(path)
    write(path, NEW, "\n" if newline == "mixed" else newline, mode="a")
    now = file_mark(path)
    with cache(var_dir) as known:
        after = appended_since(path, then, now, known)
    assert after is not None and after.offset == then.size and after.vouch_as == now.sha256
    assert after.lines == len(OLD)  # a lone "\r" ends a line, as "\n" and "\r\n" do

    appended, reported = read(path, var_dir, after)
    whole, whole_problems = read(path, tmp_path / "another-var")
    assert appended == whole[len(before):]
    assert [m.email for m in appended] == [
        "ANN@example.org", "eve@example.org", "fay@example.org"]
    assert reported == whole_problems
    assert [(p.line, p.reason.split(" ")[0]) for p in reported] == [
        (after.lines + 3, "invalid"), (after.lines + 4, "expected")]


def test_rows_appended_to_a_file_that_read_clean_leave_it_vouched_for_when_they_do(
    tmp_path: Path,
) -> None:
    """The next growth is then read from its own start, and so on, week after week."""
    path, var_dir = tmp_path / "signups.csv", tmp_path / "var"
    write(path, ["email,name", "ann@example.org,Ann"], "\n")
    read(path, var_dir)
    then = file_mark(path)
    write(path, ["bo@example.org,Bo"], "\n", mode="a")
    now = file_mark(path)
    with cache(var_dir) as known:
        after = appended_since(path, then, now, known)
        assert after is not None and not known.is_clean(now.sha256)
    read(path, var_dir, after)
    with cache(var_dir) as known:
        assert known.is_clean(now.sha256)
    write(path, ["not an address,X"], "\n", mode="a")
    grown = file_mark(path)
    with cache(var_dir) as known:
        tail = appended_since(path, now, grown, known)
    assert tail is not None
    read(path, var_dir, tail)
    with cache(var_dir) as known:  # a refused row: vouched for only by a read of it whole
        assert not known.is_clean(grown.sha256) and not known.is_noted(grown.sha256)


def test_a_file_with_refused_rows_is_read_from_its_new_rows_but_not_vouched_for(
    tmp_path: Path,
) -> None:
    path, var_dir = tmp_path / "members.csv", tmp_path / "var"
    write(path, ["email", "ann@example.org", "not an address"], "\n")
    read(path, var_dir)
    then = file_mark(path)
    write(path, ["bo@example.org"], "\n", mode="a")
    with cache(var_dir) as known:
        assert known.is_noted(then.sha256)
        after = appended_since(path, then, file_mark(path), known)
    assert after == TailStart(then.size, 3, "")
    assert [m.email for m in read(path, var_dir, after)[0]] == ["bo@example.org"]


@pytest.mark.parametrize("change", [
    "unchanged", "cut short", "edited before the end", "no line break at the end",
    "never read", "a quote left open", "renamed",
])
def test_a_file_that_did_not_only_grow_has_no_rows_appended(tmp_path: Path, change: str) -> None:
    path, var_dir = tmp_path / "members.csv", tmp_path / "var"
    lines = ["email,name", "ann@example.org,Ann", "bo@example.org,Bo"]
    if change == "a quote left open":  # its last record swallows whatever follows
        lines[-1] = 'bo@example.org,"Bo'
    path.write_text("\n".join(lines) + ("" if change == "no line break at the end" else "\n"))
    if change != "never read":
        read(path, var_dir)
    then = file_mark(path)
    text = path.read_text()
    grown = {
        "unchanged": text,
        "cut short": text[:-5],
        "edited before the end": text.replace("Ann", "Anne") + "cy@example.org,Cy\n",
    }.get(change, text + "cy@example.org,Cy\n")
    path.write_text(grown)
    now = file_mark(path)
    if change == "renamed":
        now = now._replace(name="other.csv")
    with cache(var_dir) as known:
        assert appended_since(path, then, now, known) is None
