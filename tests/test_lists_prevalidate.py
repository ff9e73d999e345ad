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

from newsletter.lists import MemberReader
from newsletter.lists.addresscache import AddressCache
from newsletter.lists.prevalidate import verdicts
from tests.conftest import REPO


def member_file(path: Path) -> Path:
    rows = []
    for i in range(400):
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


def worker(cache_file: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter.lists.validateworker", str(cache_file)],
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


def test_a_validation_process_stores_its_verdicts_itself(tmp_path: Path) -> None:
    """It answers how many it validated once their verdicts are committed, and validates
    only what the cache does not know."""
    cache_file = tmp_path / "c.sqlite"
    AddressCache(cache_file).close()
    chunk = addresses(1200)
    with worker(cache_file) as process:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps(chunk) + "\n")
        process.stdin.flush()
        assert process.stdout.readline() == "1200\n"
        assert stored(cache_file) == dict(zip(chunk, verdicts(chunk), strict=True))
        process.stdin.write(json.dumps([*chunk[::-1], "new@example.org"]) + "\n")
        process.stdin.flush()
        assert process.stdout.readline() == "1\n"  # only the new one
        process.stdin.close()
    assert process.returncode == 0
    assert stored(cache_file)["new@example.org"] == ("new@example.org", None)


def test_a_validation_process_killed_leaves_no_wrong_verdict(tmp_path: Path) -> None:
    """Killed wherever it is, it leaves a chunk's verdicts all or none, each the verdict
    email-validator gives."""
    cache_file = tmp_path / "c.sqlite"
    AddressCache(cache_file).close()
    first, second = addresses(3000), [f"other{i}@example.org" for i in range(3000)]
    with worker(cache_file) as process:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps(first) + "\n")
        process.stdin.flush()
        assert process.stdout.readline() == "3000\n"
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
