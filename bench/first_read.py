"""The first read of a new member file, as a send's freeze reads it: the CPU it costs.

Writes a file of N rows (send.py's rows: ``--bad-rows`` percent refused, 1 % of the rest in
mixed case), then streams ``stream_recipients`` over it with a fresh ``var/`` (a cold address
cache: every address validated, over the validation processes), in a fresh process, and
prints the wall time and the CPU seconds of that process and of its children (the
validation processes). ``--repeat`` runs it that many times (a new ``var/`` each time);
``--profile`` prints the main process's cProfile instead (children are not profiled).

Run:  python bench/first_read.py [--rows N] [--bad-rows PERCENT] [--repeat K]

``send.py`` (whose rows this uses) puts this checkout first on the import path: to compare
two versions of the code, run a copy of both scripts from outside the checkout, with
``PYTHONPATH`` naming the version to measure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from send import member_rows, python_speed  # the bench's own modules, beside this one


def write_file(path: Path, rows: int, bad_percent: float) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("email,name,city\n")
        out.writelines(member_rows(rows, bad_percent, False))


def read_once(path: Path, var_dir: Path) -> dict[str, float]:
    from newsletter.lists.reading import stream_recipients

    started = time.perf_counter()
    problems = 0

    def count(_problem: object) -> None:
        nonlocal problems
        problems += 1

    members = sum(1 for _ in stream_recipients(
        [path], "bench", var_dir=var_dir, check_deliverability=False, on_problem=count
    ))
    wall = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "members": members, "problems": problems, "wall": wall,
        "main_cpu": own.ru_utime + own.ru_stime,
        "pool_cpu": children.ru_utime + children.ru_stime,
    }


def profile_once(path: Path, var_dir: Path) -> None:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(read_once, path, var_dir)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def run_fresh(path: Path, var_dir: Path, profile: bool) -> dict[str, float]:
    mode = "--profile-one" if profile else "--one"
    done = subprocess.run(
        [sys.executable, __file__, mode, str(path), str(var_dir)],
        check=True, capture_output=not profile, text=True,
    )
    return {} if profile else dict(json.loads(done.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--bad-rows", type=float, default=0.0, metavar="PERCENT")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--profile-one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(read_once(Path(args.one[0]), Path(args.one[1]))))
        return
    if args.profile_one:
        profile_once(Path(args.profile_one[0]), Path(args.profile_one[1]))
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "members.csv"
        write_file(path, args.rows, args.bad_rows)
        print(f"{args.rows:,} rows ({args.bad_rows:g} % refused), load average "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        for run in range(args.repeat):
            r = run_fresh(path, Path(folder) / f"var{run}", args.profile)
            if r:
                cpu = r["main_cpu"] + r["pool_cpu"]
                print(f"first read  wall {r['wall']:6.2f} s  CPU {cpu:6.2f} s"
                      f" (main {r['main_cpu']:.2f}, validation processes {r['pool_cpu']:.2f})"
                      f"  {r['members']:,} members, {r['problems']:,} problems")
        print(f"python speed {python_speed():.1f} µs for sum(range(1000)) (machine speed)")
        print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
