"""``newsletter issue recipients`` over a large ledger: time and the command's peak memory.

    python bench/recipients_list.py [--recipients 1000000] [--database URL]

Freezes an issue of ``--recipients`` members (batches of 1,000, marked sent whole, as a
send leaves them), then lists it with ``--csv`` and ``--json`` into a pipe that is read and
counted, and again for a tenth of the rows (``--status failed`` on a tenth made failed), and
prints the wall time and the command's peak RSS for each. The list is streamed, so the peak
should not grow with the rows. Figures only; nothing is checked.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import update

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter.models import BatchState, DeliveryStatus, IssueKind, IssueState, Recipient
from newsletter.store import Store, audience
from newsletter.store import issues as issue_store
from newsletter.store.tables import batches, recipients

NOW = datetime(2026, 11, 26, tzinfo=UTC)

#: Runs the command with its stdout into a pipe it counts lines of, and prints the count and
#: the command's peak RSS (its own rusage, not this script's).
MEASURE = textwrap.dedent("""
    import resource, subprocess, sys
    child = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)
    lines = sum(chunk.count(b"\\n") for chunk in iter(lambda: child.stdout.read(1 << 16), b""))
    if child.wait() != 0:
        sys.exit(f"exit status {child.returncode}")
    print(lines, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
""")


def frozen_issue(store: Store, count: int) -> int:
    """An issue of ``count`` members, sent whole; every tenth row failed."""
    members = (Recipient(f"reader{i}@example.org", f"Reader {i}", {}, "w") for i in range(count))
    with store.engine.begin() as conn:
        issue_id = issue_store.create(conn, list_id="w", kind=IssueKind.DIGEST, subject="S",
                                      preheader="", intro_md="", article_ids=[], at=NOW)
        issue_store.transition(conn, issue_id, IssueState.QUEUED, NOW)
        issue_store.transition(conn, issue_id, IssueState.SENDING, NOW)
    audience.freeze_audience(store.engine, issue_id, members, batch_size=1000, at=NOW)
    with store.engine.begin() as conn:
        conn.execute(update(batches).where(batches.c.issue_id == issue_id)
                     .values(state=str(BatchState.SENT)))
        conn.execute(update(recipients).where(recipients.c.issue_id == issue_id,
                                              recipients.c.id % 10 == 0)
                     .values(status=str(DeliveryStatus.FAILED), error="550 no such user"))
    return issue_id


def measure(home: Path, *args: str) -> tuple[float, int, int]:
    command = [sys.executable, "-m", "newsletter", "--home", str(home), "issue", "recipients",
               *args]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True,
                          text=True, check=True)
    lines, peak_kib = (int(v) for v in done.stdout.split())
    return time.perf_counter() - started, lines, peak_kib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--database", help="a database URL (default: a new SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        url = args.database or f"sqlite:///{home / 'bench.db'}"
        (home / ".env").write_text(f"NEWSLETTER_DATABASE_URL={url}\n", encoding="utf-8")
        store = Store.open(url)
        started = time.perf_counter()
        issue_id = frozen_issue(store, args.recipients)
        store.close()
        print(f"ledger of {args.recipients:,} written in {time.perf_counter() - started:.1f} s")
        for label, extra in (
            ("--csv, every row", ["--csv"]),
            ("--json, every row", ["--json"]),
            ("--csv --status failed", ["--csv", "--status", "failed"]),
        ):
            seconds, lines, peak_kib = measure(home, str(issue_id), *extra)
            print(f"{label:<24} {lines:>9,} lines  {seconds:6.2f} s  "
                  f"peak RSS {peak_kib / 1024:6.1f} MiB")


if __name__ == "__main__":
    main()
