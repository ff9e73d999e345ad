"""A new member file's addresses validated by a pool of processes: the same verdicts, the
same members and the same file:line reasons as when one process validates them."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from newsletter.lists import MemberReader, members, prevalidate
from newsletter.lists.addresscache import AddressCache
from newsletter.lists.prevalidate import verdicts
from tests.conftest import REPO


def member_file(path: Path, count: int = 400) -> Path:
    rows = []
    for i in range(count):
        if i % 7 == 0:
            rows.append(f"reader{i}@@example.org,Bad {i}\n")  # refused
        elif i % 11 == 0:
            rows.append(f"Reader{i}@Example.ORG,Mixed {i}\n")  # normalised
        elif i % 13 == 0:
            rows.append(f"reader{i}@example.org\n")  # a column short: never looked up
        elif i % 17 == 0:
            rows.append("# a comment\n\n,,\n")
        elif i % 19 == 0:
            rows.append(f"  reader{i}@example.org ,Spaced {i}\n")  # asked about stripped
        else:
            rows.append(f"reader{i}@example.org,Reader {i}\n")
    rows.append("reader1@example.org,Repeat\n")
    path.write_text("email,name\n" + "".join(rows))
    return path


def read(path: Path, cache_file: Path, pool_from: int) -> tuple[object, ...]:
    reader = MemberReader([path], cache=AddressCache(cache_file), pool_from=pool_from)
    members = [(m.subscriber, m.line) for m in reader.members()]
    assert reader.cache is not None
    reader.cache.close()
    with sqlite3.connect(cache_file) as db:
        accepted = set(db.execute("SELECT raw, normalised FROM accepted"))
        refused = set(db.execute("SELECT raw, reason FROM refused"))
    problems = [str(p) for p in reader.problems]
    return reader.validated_in_pool, members, problems, accepted, refused


def test_a_pool_validates_a_new_file_as_one_process_does(tmp_path: Path) -> None:
    path = member_file(tmp_path / "a.csv")
    pooled = read(path, tmp_path / "pooled.sqlite", pool_from=1)
    alone = read(path, tmp_path / "alone.sqlite", pool_from=10**9)
    assert pooled[0] == len(pooled[3]) + len(pooled[4]) > 300 and alone[0] == 0
    assert pooled[1:] == alone[1:]
    assert any("@@" in raw for raw, _ in pooled[4])
    again = read(path, tmp_path / "pooled.sqlite", pool_from=1)
    assert again[0] == 0 and again[1:] == alone[1:]  # nothing new: no pool


def test_a_check_takes_the_pool_s_verdicts_from_its_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A read that checks every row (``lists check``, ``lists show``, the desk's lists page)
    validates no address itself while the pool answers, though the processes store their
    verdicts in the cache only with a later transaction (here, after the read). A read that
    looked them up there validated most of the file a second time."""
    monkeypatch.setattr(prevalidate, "WORKER_MODULE", "tests.late_storing_validateworker")
    validated: list[str] = []
    validate = members.normalise_address

    def counted(raw: str, **options: bool) -> str:
        validated.append(raw)
        return validate(raw, **options)

    monkeypatch.setattr(members, "normalise_address", counted)
    path = odd_rows(tmp_path / "a.csv")
    pooled = read(path, tmp_path / "pooled.sqlite", pool_from=1)
    assert pooled[0] > 300 and [raw for raw in validated if raw.strip()] == []
    monkeypatch.undo()
    alone = read(path, tmp_path / "alone.sqlite", pool_from=10**9)
    assert pooled[1:3] == alone[1:3]  # members, problems (this pool stores no verdicts)


def test_an_edited_file_the_cache_knows_is_judged_by_the_pool(tmp_path: Path) -> None:
    """One row of a file read before is edited: its bytes are new, its addresses are not.
    The pool looks them up (it validates none), and the read, a check or a send's, asks the
    cache about no row the pool accepted, and finds what one process finds."""
    path = odd_rows(tmp_path / "a.csv")
    read_recipients(path, tmp_path / "pooled.sqlite", pool_from=1)
    path.write_text(path.read_text().replace("Reader 2\n", "Reader Two\n"))
    alone = read_recipients(path, tmp_path / "alone.sqlite", pool_from=10**9)
    edited = read_recipients(path, tmp_path / "pooled.sqlite", pool_from=1)
    for what in ("recipients", "problems", "counts"):  # its cache notes both versions
        assert edited[what] == alone[what], what
    assert edited["pooled"] == 0 and edited["asked"] == 0
    path.write_text(path.read_text().replace("Reader Two\n", "Reader 2\n"))
    checked = CountingCache(tmp_path / "pooled.sqlite")
    reader = MemberReader([path], cache=checked, pool_from=1)
    found = [(m.subscriber, m.line) for m in reader.members()]
    checked.close()
    assert checked.asked == 0 and reader.validated_in_pool == 0
    problems = [str(problem) for problem in reader.problems]
    assert (found, problems) == read(path, tmp_path / "alone2.sqlite", 10**9)[1:3]


def test_a_row_that_is_not_csv_ends_the_pool_s_share_not_the_read(tmp_path: Path) -> None:
    """The pool's scan stops at a malformed row; the rows after it are validated by the
    row-by-row read, with the same members, reasons and cache as one process gives."""
    path = member_file(tmp_path / "a.csv")
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(200, '"reader-broken@example.org"x,Broken\n')
    path.write_text("".join(lines))
    pooled = read(path, tmp_path / "pooled.sqlite", pool_from=1)
    alone = read(path, tmp_path / "alone.sqlite", pool_from=10**9)
    assert 0 < pooled[0] < len(pooled[3]) + len(pooled[4])
    assert pooled[1:] == alone[1:]
    assert any("a.csv:201:" in problem for problem in pooled[2]), pooled[2]


def test_a_script_without_a_main_guard_can_read_a_new_file(tmp_path: Path) -> None:
    """The processes are fresh interpreters: none re-runs the script that started them
    (``multiprocessing``'s spawn did, and the script started processes again, and failed)."""
    path = member_file(tmp_path / "a.csv")
    script = tmp_path / "script.py"
    script.write_text(
        "from pathlib import Path\n"
        "from newsletter.lists import MemberReader\n"
        "from newsletter.lists.addresscache import AddressCache\n"
        f"reader = MemberReader([Path({str(path)!r})], pool_from=1,\n"
        f"                      cache=AddressCache(Path({str(tmp_path / 'c.sqlite')!r})))\n"
        "print(sum(1 for _ in reader), reader.validated_in_pool)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)}, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr
    members, pooled = map(int, done.stdout.split())
    assert members > 300 and pooled > 300


def worker(cache_file: Path, *commit_every: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter.lists.validateworker", str(cache_file),
         *map(str, commit_every)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def stored(cache_file: Path) -> dict[str, tuple[str | None, str | None]]:
    with sqlite3.connect(cache_file) as db:
        accepted = {raw: (form, None) for raw, form in db.execute("SELECT * FROM accepted")}
        refused = {raw: (None, why) for raw, why in db.execute("SELECT * FROM refused")}
    return {**accepted, **refused}


def addresses(count: int) -> list[str]:
    return [f"Reader{i}@Example.org" if i % 3 else f"reader{i}@@example.org" for i in range(count)]


def ask(process: subprocess.Popen[str], chunk: list[str]) -> tuple[int, list[list[object]]]:
    """What a validation process answers about ``chunk``: how many it validated, and the
    records not accepted as written, with their verdicts."""
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(json.dumps(chunk) + "\n")
    process.stdin.flush()
    validated, irregular = json.loads(process.stdout.readline())
    return validated, irregular


def irregular(chunk: list[str]) -> list[list[object]]:
    """The answer one process gives about ``chunk``: every record whose address is not
    accepted as written, with email-validator's verdict on it."""
    found = verdicts(chunk)
    return [[at, *(verdict if raw else (None, None))]
            for at, (raw, verdict) in enumerate(zip(chunk, found, strict=True))
            if verdict != (raw, None)]


def test_a_validation_process_stores_its_verdicts_itself(tmp_path: Path) -> None:
    """It answers how many it validated, and validates only what it and the cache do not
    know; it names every record not accepted as written, known or new, with its verdict.
    The verdicts are stored in transactions of many chunks, the last as it exits."""
    cache_file = tmp_path / "c.sqlite"
    AddressCache(cache_file).close()
    chunk = addresses(1200)
    with worker(cache_file) as process:
        assert ask(process, chunk) == (1200, irregular(chunk))
        assert stored(cache_file) == {}  # held for the next transaction, and known
        again = [*chunk[::-1], "new@example.org", "", "reader2@example.org"]
        validated, answer = ask(process, again)
        assert validated == 2  # only the new ones, accepted as written: not named
        assert answer == [*irregular(again[:-3]), [1201, None, None]]  # "": nothing to ask
        process.stdin.close()  # type: ignore[union-attr]
    assert process.returncode == 0
    everything = [*chunk, "new@example.org", "reader2@example.org"]
    assert stored(cache_file) == dict(zip(everything, verdicts(everything), strict=True))
    with worker(cache_file) as process:  # another process finds them stored
        assert ask(process, chunk) == (0, irregular(chunk))
        process.stdin.close()  # type: ignore[union-attr]


def test_a_validation_process_killed_leaves_no_wrong_verdict(tmp_path: Path) -> None:
    """Killed wherever it is, it leaves a transaction's verdicts all or none, each the
    verdict email-validator gives (here a transaction holds 3,000)."""
    cache_file = tmp_path / "c.sqlite"
    AddressCache(cache_file).close()
    first, second = addresses(3000), [f"other{i}@example.org" for i in range(3000)]
    with worker(cache_file, 3000) as process:
        assert process.stdin is not None and process.stdout is not None
        assert ask(process, first) == (3000, irregular(first))
        process.stdin.write(json.dumps(second) + "\n")
        process.stdin.flush()
        process.kill()  # before, during or after it stores the second chunk
    found = stored(cache_file)
    assert len(found) in (len(first), len(first) + len(second))
    assert found == dict(zip(found, verdicts(list(found)), strict=True))


def test_a_reader_that_stops_early_stops_the_pool(tmp_path: Path) -> None:
    """The pool validates while the file is read; a read left off ends it, and a full read
    gives the recipients one process gives."""
    path = tmp_path / "big.csv"
    path.write_text("email,name\n" + "".join(f"r{i}@example.org,R {i}\n" for i in range(12_000)))
    reader = MemberReader([path], cache=AddressCache(tmp_path / "c.sqlite"), pool_from=1)
    recipients = reader.recipients("weekly")
    assert next(recipients).email == "r0@example.org"
    recipients.close()
    assert not [t for t in threading.enumerate() if t.name == "prevalidation"]
    assert 0 < reader.validated_in_pool <= 12_000
    assert reader.cache is not None
    reader.cache.close()
    found = stored(tmp_path / "c.sqlite")
    assert found == dict(zip(found, verdicts(list(found)), strict=True))
    pooled = MemberReader([path], cache=AddressCache(tmp_path / "c2.sqlite"), pool_from=1)
    alone = MemberReader([path], cache=AddressCache(tmp_path / "c3.sqlite"), pool_from=10**9)
    assert list(pooled.recipients("weekly")) == list(alone.recipients("weekly"))
    assert pooled.validated_in_pool == 12_000 and alone.validated_in_pool == 0
    for done in (pooled, alone):
        assert done.cache is not None
        done.cache.close()


def odd_rows(path: Path) -> Path:
    """``member_file`` with the rows a lean read must replay exactly: quoted fields, a comma
    inside one, an address quoted with spaces, a row of empty cells, a name with no address,
    a mixed-case domain, and a repeat of a mixed-case address."""
    text = member_file(path).read_text()
    path.write_text(text + "".join([
        '"reader9001@example.org","Quoted, With Comma"\n',
        '" reader9002@example.org ",Spaced Quoted\n',
        ',\n',
        ',Nameless\n',
        '"Reader9003@EXAMPLE.org",Upper\n',
        'reader9003@example.org,Lower\n',
        'Reader11@Example.ORG,Repeat Mixed\n',
    ]))
    return path


class CountingCache(AddressCache):
    """The address cache, counting the look-ups the read makes in it."""

    asked = 0

    def get(self, raw: str) -> str | None:
        self.asked += 1
        return super().get(raw)

    def expect(self, raws: list[str]) -> None:
        self.asked += len(raws)
        super().expect(raws)


def read_recipients(
    path: Path, cache_file: Path, pool_from: int, keep: set[str] | None = None
) -> dict[str, object]:
    """A read of ``path``'s recipients, with all it reports and the cache remembers of it."""
    cache = CountingCache(cache_file)
    reader = MemberReader([path], cache=cache, pool_from=pool_from)
    recipients = list(reader.recipients("weekly", keep=keep))
    cache.close()
    with sqlite3.connect(cache_file) as db:
        notes = sorted(db.execute("SELECT record, line, normalised, reason FROM file_notes"))
        vouched = (db.execute("SELECT count(*) FROM clean_files").fetchone(),
                   db.execute("SELECT count(*) FROM noted_files").fetchone())
    return {
        "recipients": recipients, "problems": [str(p) for p in reader.problems],
        "counts": reader.counts, "notes": notes, "vouched": vouched,
        "pooled": reader.validated_in_pool, "asked": cache.asked,
    }


def same_read(pooled: dict[str, object], alone: dict[str, object]) -> None:
    for what in ("recipients", "problems", "counts", "notes", "vouched"):
        assert pooled[what] == alone[what], what


def test_a_pooled_read_of_recipients_reports_and_remembers_what_one_process_does(
    tmp_path: Path,
) -> None:
    """The rows the pool passes are taken without asking the cache; the others are checked
    the full way: the same recipients, problems, counts and notes, and the same file
    remembered, as when one process checks every row; and the lean read of the same bytes
    afterwards gives them again."""
    path = odd_rows(tmp_path / "a.csv")
    pooled = read_recipients(path, tmp_path / "pooled.sqlite", pool_from=1)
    alone = read_recipients(path, tmp_path / "alone.sqlite", pool_from=10**9)
    same_read(pooled, alone)
    assert pooled["vouched"] == ((0,), (1,)) and pooled["notes"]
    assert pooled["pooled"] > 300 and alone["pooled"] == 0
    irregular = len(pooled["notes"])  # type: ignore[arg-type]
    # The pool's verdicts come with its answers: not one row is looked up in the cache.
    assert pooled["asked"] == 0 < irregular < alone["asked"]  # type: ignore[operator]
    again = read_recipients(path, tmp_path / "pooled.sqlite", pool_from=1)
    same_read(again, alone)
    assert again["pooled"] == 0 and again["asked"] == 0


@pytest.mark.parametrize("keep", [None, {"city"}, {"name"}, set()])
def test_a_pooled_read_keeps_the_columns_one_process_keeps(
    tmp_path: Path, keep: set[str] | None
) -> None:
    path = tmp_path / "a.csv"
    rows = odd_rows(tmp_path / "two.csv").read_text().splitlines()
    path.write_text("email,name,city,plan\n" + "".join(
        f"{row},City {i},\"Plan, {i}\"\n"
        for i, row in enumerate(rows[1:]) if row and "#" not in row
    ))
    pooled = read_recipients(path, tmp_path / "pooled.sqlite", pool_from=1, keep=keep)
    alone = read_recipients(path, tmp_path / "alone.sqlite", pool_from=10**9, keep=keep)
    same_read(pooled, alone)
    assert len(pooled["recipients"]) > 300  # type: ignore[arg-type]


def test_a_name_unfit_for_headers_is_never_vouched_for_in_a_pooled_read(tmp_path: Path) -> None:
    """A line break in a name: the member is kept (the send fails it alone) in both reads,
    and neither remembers the file, which each read must report again."""
    path = odd_rows(tmp_path / "a.csv")
    path.write_text(path.read_text() + 'reader9004@example.org,"Multi\nLine"\n')
    pooled = read_recipients(path, tmp_path / "pooled.sqlite", pool_from=1)
    alone = read_recipients(path, tmp_path / "alone.sqlite", pool_from=10**9)
    same_read(pooled, alone)
    assert pooled["vouched"] == ((0,), (0,))


class StalePool:
    """A pool that judged the file as it was before ``refused`` rows were broken: the
    judgment of a file that changed between the pool's scan and the read."""

    before: Path

    def __init__(self, _path: Path, _cache_file: Path, _pool_from: int) -> None:
        old = [a for batch in prevalidate._address_batches(self.before) for a in batch]
        answer = [(int(at), form, why) for at, form, why in irregular(old)]
        self.judgment = prevalidate.Judged.of(0, old, answer)

    def judged(self, record: int) -> prevalidate.Judged | None:
        return self.judgment if record < self.judgment.end else None

    verdicts_on = prevalidate.Prevalidation.verdicts_on

    def close(self) -> int:
        return 0


def judged_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file whose row 2 was broken after a pool (``StalePool``, put in place) scanned it."""
    before = member_file(tmp_path / "before.csv")
    path = tmp_path / "a.csv"
    path.write_text(before.read_text().replace("@example.org,Reader 2", "@@example.org,Reader 2"))
    StalePool.before = before
    monkeypatch.setattr(members, "Prevalidation", StalePool)
    return path


def test_a_row_the_pool_judged_otherwise_is_checked_the_full_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A file that changes between the pool's scan and the read: a row whose address is not
    the one the pool judged is checked by the read itself, never sent on the pool's word."""
    path = judged_stale(tmp_path, monkeypatch)
    stale = read_recipients(path, tmp_path / "stale.sqlite", pool_from=1)
    monkeypatch.undo()
    alone = read_recipients(path, tmp_path / "alone.sqlite", pool_from=10**9)
    same_read(stale, alone)
    assert any("@@" in problem for problem in stale["problems"])  # type: ignore[attr-defined]


def test_a_check_with_a_stale_pool_checks_a_changed_row_the_full_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same on a read that checks every row (``lists check``): the pool's verdict on
    the address it scanned is not taken for the one the read finds."""
    path = judged_stale(tmp_path, monkeypatch)
    stale = read(path, tmp_path / "stale.sqlite", pool_from=1)
    monkeypatch.undo()
    alone = read(path, tmp_path / "alone.sqlite", pool_from=10**9)
    assert stale[1:3] == alone[1:3]  # members, problems (a fake pool stores no verdicts)
    assert any("@@" in problem for problem in stale[2])  # type: ignore[attr-defined]


def test_a_validation_process_killed_mid_read_leaves_the_rest_to_the_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each process answers one chunk and is killed in the middle of its next: the read
    checks the rows the pool did not answer for itself, with the same recipients, problems,
    counts and notes as one process gives, and the cache holds only true verdicts."""
    monkeypatch.setattr(prevalidate, "WORKER_MODULE", "tests.dying_validateworker")
    path = member_file(tmp_path / "a.csv", count=40_000)
    pooled = read_recipients(path, tmp_path / "pooled.sqlite", pool_from=1)
    alone = read_recipients(path, tmp_path / "alone.sqlite", pool_from=10**9)
    same_read(pooled, alone)
    assert 0 < pooled["pooled"] < 20_000  # type: ignore[operator]
    found = stored(tmp_path / "pooled.sqlite")
    assert found == dict(zip(found, verdicts(list(found)), strict=True))
