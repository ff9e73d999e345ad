"""How fast, and in how much memory, a large members CSV is read.

Writes a CSV of N rows (default 1,000,000; a few invalid and duplicate rows mixed in, the
addresses in no order, as a real list's are), then reads it in a fresh process per mode, so
each peak RSS belongs to that mode alone:

    csv      plain ``csv.reader`` over the file: the floor
    count    ``MemberReader.count()``: validation + de-duplication, the ``lists show`` pass,
             with no address cache (every address validated in this process)
    iterate  building every ``Subscriber`` (with its fields), as a send would
    checked  ``count()`` over the same file once the address cache has read it (before the
             clock): what ``lists check`` and ``lists show`` do with an unchanged list

Run:  python bench/members.py [--rows N]
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("csv", "count", "iterate", "checked")


def peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux (bytes on macOS, where this reads 1024x too high).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["email", "name", "city"])
        for i in range(rows):
            if i % 100_000 == 99_999:
                writer.writerow([f"broken{i}@", "Broken", "Nowhere"])
            elif i % 100_000 == 50_000:
                writer.writerow([address(0).replace("example", "Example"), "Again", "Kellmouth"])
            else:
                writer.writerow([address(i), f"Subscriber {i}", "Kellmouth"])


def address(i: int) -> str:
    """Member ``i``'s address: in no address order, as a list in sign-up order is."""
    return f"s{i * 2_654_435_761 % 2**32:08x}.{i}@example.org"


def cache_file(path: Path) -> Path:
    return path.with_name("addresses.sqlite")


def read_once(path: Path) -> None:
    """The file read through the address cache, as the first ``lists check`` reads it."""
    from newsletter.lists import MemberReader
    from newsletter.lists.addresscache import AddressCache

    cache = AddressCache(cache_file(path))
    MemberReader([path], cache=cache, on_problem=lambda problem: None).count()
    cache.close()


def measure(mode: str, path: Path) -> dict[str, float]:
    from newsletter.lists import MemberReader
    from newsletter.lists.addresscache import AddressCache

    if mode == "prepare":
        read_once(path)
        return {}
    baseline = peak_rss_mb()
    started = time.perf_counter()
    if mode == "csv":
        with path.open(encoding="utf-8", newline="") as handle:
            rows = sum(1 for _ in csv.reader(handle)) - 1
    else:
        cache = AddressCache(cache_file(path)) if mode == "checked" else None
        reader = MemberReader([path], cache=cache, on_problem=lambda problem: None)
        if mode == "count":
            reader.count()
        else:
            for _ in reader:
                pass
        rows = reader.counts.rows
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": seconds, "baseline_mb": baseline, "peak_mb": peak_rss_mb()}


def run_mode(mode: str, path: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--measure", mode, str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--measure", nargs=2, metavar=("MODE", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], Path(args.measure[1]))))
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "members.csv"
        write_csv(path, args.rows)
        run_mode("prepare", path)  # not here: a child's peak RSS counts its parent's
        size_mb = path.stat().st_size / 1e6
        print(f"{args.rows:,} rows, {size_mb:.0f} MB file; each mode in a fresh process")
        print(f"{'mode':<8} {'seconds':>8} {'rows/s':>10} {'peak RSS':>9} {'above start':>12}")
        for mode in MODES:
            r = run_mode(mode, path)
            print(
                f"{mode:<8} {r['seconds']:>8.2f} {r['rows'] / r['seconds']:>10,.0f} "
                f"{r['peak_mb']:>7.0f}MB {r['peak_mb'] - r['baseline_mb']:>10.0f}MB"
            )


if __name__ == "__main__":
    main()
