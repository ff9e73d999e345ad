"""What screening a send's audience for forgotten readers costs.

A send reads its list through ``stream_recipients``; once any reader has been forgotten
(``newsletter subscribers forget``), each member is hashed and looked up among the
forgotten readers' hashes (``suppressions.ForgottenScreen``). This writes a member file of
N rows, reads it once to fill the address cache (as a first send does), then times the
read a repeated send makes, without and with the screen, best of three each.

Run:  python bench/forgotten.py [--members N] [--forgotten K]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
import timeit
from collections.abc import Callable, Iterable
from pathlib import Path

from newsletter.lists.reading import stream_recipients
from newsletter.models import Recipient
from newsletter.store.suppressions import ForgottenScreen, forgotten_digest


def python_speed() -> float:
    """Microseconds for ``sum(range(1000))`` (best of 20): to compare machines."""
    return min(timeit.repeat("sum(range(1000))", number=2000, repeat=20)) / 2000 * 1e6


def write_members(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["email", "name", "city"])
        for i in range(rows):
            writer.writerow([f"reader.{i}@example{i % 5000}.org", f"Reader {i}", "Kellmouth"])


def best_of_three(read: Callable[[], Iterable[Recipient]]) -> float:
    times = []
    for _ in range(3):
        started = time.perf_counter()
        for _member in read():
            pass
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--forgotten", type=int, default=1_000,
                        help="how many forgotten readers (none of them in the file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        members = root / "members.csv"
        write_members(members, args.members)

        def read() -> Iterable[Recipient]:
            return stream_recipients([members], "bench", var_dir=root,
                                     check_deliverability=False, on_problem=print)

        for _member in read():  # the first send's read: every address validated, remembered
            pass
        digests = frozenset(forgotten_digest(f"gone.{i}@example.org")
                            for i in range(args.forgotten))
        speed = python_speed()
        plain = best_of_three(read)
        screened = best_of_three(lambda: ForgottenScreen(digests).members(read()))
    extra = screened - plain
    print(f"python speed           {speed:.1f} µs")
    print(f"read, no screen        {plain:.2f} s for {args.members:,} members")
    print(f"read, screened         {screened:.2f} s ({args.forgotten:,} forgotten readers)")
    print(f"the screen's cost      {extra:.2f} s, {extra / args.members * 1e6:.2f} µs a member")


if __name__ == "__main__":
    main()
