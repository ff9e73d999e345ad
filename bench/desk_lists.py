"""The desk's lists page on a large list: how long each view takes; print figures.

    python bench/desk_lists.py [--rows 1000000] [--suppressed 10000]

Copies the example publication into a temporary folder, gives its weekly list a members
file of ``--rows`` rows (one in 100,000 invalid and one repeated)
and ``--suppressed`` of them suppressed, then times ``schedule.listing.ListsReader``'s
``overview`` (what ``/desk/lists`` runs): a first view with the address cache cold (as on
a list nobody has read yet), a view after one row of the file was edited (checked whole,
every address found in the cache), one with no kept check but the file's bytes remembered
(as after a reader is forgotten), the first view of another process (or after a restart),
which reads the check kept on disk, then views of the unchanged lists, one after a
suppression was added, and views after readers signed up (their file is read, the members
file is not).
The objects alive before the first view are set aside from the garbage collector, as
``newsletter serve`` does once its app is built (without that, each view that reads the
file takes about half as long again). Prints the python speed before and after. Figures
only; nothing is checked.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from members import address, write_csv  # noqa: E402
from send import python_speed  # noqa: E402

from newsletter.config import Settings, load_settings  # noqa: E402
from newsletter.lists.keptchecks import kept_path  # noqa: E402
from newsletter.models import SuppressionReason  # noqa: E402
from newsletter.schedule.listing import ListsReader  # noqa: E402
from newsletter.store import Store, suppressions  # noqa: E402


def publication(root: Path, rows: int) -> Settings:
    for name in ("subscribers", "articles"):
        shutil.copytree(BENCH.parent / name, root / name)
    write_csv(root / "subscribers" / "weekly.csv", rows)  # members.py's list, 2 bad rows in 100,000
    return load_settings(root, environ={}).with_changes(
        database_url=f"sqlite:///{root / 'var' / 'bench.db'}"
    )


def suppress(store: Store, rows: int, count: int) -> None:
    step = max(rows // max(count, 1), 1)
    with store.engine.begin() as conn:
        for n in range(0, step * count, step):
            suppressions.add(conn, address(n), SuppressionReason.UNSUBSCRIBED,
                             at=datetime.now(UTC))


def sign_up(settings: Settings, who: str) -> None:
    """A confirmed reader, as the desk's host appends them to the list's sign-up file."""
    path = settings.subscribers_dir / "weekly-signups.csv"
    header = "" if path.exists() else "email,name\n"
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f"{header}{who}-reader@example.net,{who.title()} Reader\n")


def edit_one_row(path: Path, member: int) -> None:
    """The name of member ``member`` (or of the next one with a name of its own: a bad row or
    a repeat has none) changed, as an admin edits a row: the file's digest changes, so the
    next view checks it whole, every address found in the address cache."""
    text = path.read_text(encoding="utf-8")
    name = next(name for n in range(member, member + 3) if (name := f",Subscriber {n},") in text)
    path.write_text(text.replace(name, f"{name[:-1]} (edited),", 1), encoding="utf-8")


def timed(label: str, reader: ListsReader) -> None:
    started = time.perf_counter()
    overview = reader.overview()
    weekly = next(m for m in overview.lists if m.id == "weekly")
    print(f"{label:<44} {time.perf_counter() - started:8.2f} s   "
          f"members {weekly.members:,}, suppressed {weekly.suppressed:,}, "
          f"invalid {weekly.invalid:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--suppressed", type=int, default=10_000)
    args = parser.parse_args()
    print(f"python speed before {python_speed():.1f} µs for sum(range(1000)) (machine speed)")
    with tempfile.TemporaryDirectory() as folder:
        settings = publication(Path(folder), args.rows)
        store = Store.open(settings.database_url)
        # As ``newsletter serve`` sets aside what is alive once its app is built
        # (``cli.serve.settled``): the collector's full passes do not walk it on every view.
        gc.collect()
        gc.freeze()
        try:
            suppress(store, args.rows, args.suppressed)
            timed("first view, address cache cold", ListsReader(settings, store))
            edit_one_row(settings.subscribers_dir / "weekly.csv", args.rows // 2)
            timed("after an edit of one row (cache warm)", ListsReader(settings, store))
            # As after a reader is forgotten, which drops every kept check: the bytes are
            # the same, so what the address cache remembers of the file still holds.
            shutil.rmtree(kept_path(settings.var_dir, "weekly").parent)
            timed("with no kept check (file remembered)", ListsReader(settings, store))
            reader = ListsReader(settings, store)
            timed("another process's first view (check kept)", reader)
            timed("again, nothing changed", reader)
            with store.engine.begin() as conn:
                suppressions.add(conn, address(1), SuppressionReason.MANUAL,
                                 at=datetime.now(UTC))
            timed("again, one more suppression", reader)
            sign_up(settings, "first")
            timed("after a sign-up (in another process)", ListsReader(settings, store))
            sign_up(settings, "second")
            timed("after another sign-up", reader)
        finally:
            store.close()
    print(f"python speed after  {python_speed():.1f} µs")


if __name__ == "__main__":
    main()
