"""A new member file's addresses validated by a pool of processes: the same verdicts, the
same members and the same file:line reasons as when one process validates them."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from newsletter.lists import MemberReader
from newsletter.lists.addresscache import AddressCache
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
