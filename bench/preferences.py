"""What reading a reader's own page costs as the lists grow.

The page reads the lists' files on every view (they are the record of who is a member).
A file whose bytes do not hold the reader's local part is passed over unparsed; a file that
does is parsed whole. This writes the example publication with a weekly list of N rows and
times ``readers.preferences.subscription`` for a member of it and for a reader who is in
the other list only, best of three each.

Run:  python bench/preferences.py [--members N]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import tempfile
import time
from pathlib import Path

from newsletter.config import load_settings
from newsletter.lists.config import load_config
from newsletter.readers import preferences
from newsletter.store import Store

REPO = Path(__file__).resolve().parent.parent
MEMBER = "reader.7777@example2777.org"
NOT_IN_WEEKLY = "nora.penhallow@example.org"


def write_members(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["email", "name", "city"])
        for i in range(rows):
            writer.writerow([f"reader.{i}@example{i % 5000}.org", f"Reader {i}", "Kellmouth"])


def best_of_three(home: Path, email: str) -> float:
    settings = load_settings(home, environ={})
    config = load_config(settings)
    store = Store.open(f"sqlite:///{home / 'bench.db'}")
    try:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            preferences.subscription(config, store, email, "weekly")
            times.append(time.perf_counter() - started)
        return min(times)
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        for name in ("subscribers", "templates", "articles"):
            shutil.copytree(REPO / name, home / name)
        write_members(home / "subscribers" / "weekly.csv", args.members)
        size = (home / "subscribers" / "weekly.csv").stat().st_size / 1e6
        print(f"weekly.csv: {args.members:,} rows, {size:.1f} MB")
        for who, email in (("a member of it", MEMBER), ("not in it", NOT_IN_WEEKLY)):
            print(f"  page of a reader {who}: {best_of_three(home, email) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
