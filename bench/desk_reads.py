"""The desk's reads of a large send: progress, a page of recipients, the report; print figures.

    python bench/desk_reads.py [--recipients 1000000] [--database URL]
    python bench/desk_reads.py --watch-send [--recipients 1000000]

The first form freezes an issue of ``--recipients`` members mid-send (the first half of
its batches sent: half of those whole, half with an id per recipient; one row in 997
failed; 2,000 members suppressed) and times ``editor.report.progress`` (what the desk's
progress route runs every two seconds), pages of ``editor.report.recipients`` (searches by
prefix and by status, deep pages) and ``editor.report.report``, printing the median and
the best of several runs of each.

``--watch-send`` sends a real issue through the fake Mailgun, as ``bench/send.py`` does,
four times in turn: alone, watched, alone, watched. A watched send has another process
(as a web server would be) calling ``progress`` every two seconds; the bench prints each
send's wall time and the CPU the watcher spent, as a share of the send's wall time.
Figures only; nothing is checked.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from newsletter.editor import report  # noqa: E402
from newsletter.models import (  # noqa: E402
    BatchState,
    DeliveryStatus,
    IssueKind,
    IssueState,
    Recipient,
    SuppressionReason,
)
from newsletter.store import Store, audience, suppressions  # noqa: E402
from newsletter.store import issues as issue_store  # noqa: E402
from newsletter.store.tables import batches, recipients  # noqa: E402

STARTED = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
POLL_SECONDS = 2.0


def mid_send(store: Store, count: int) -> int:
    """An issue of ``count`` members frozen in batches of 1,000, half of them sent."""
    with store.engine.begin() as conn:
        for i in range(0, count, count // 2000 or 1):
            suppressions.add(conn, f"reader{i}@example.org", SuppressionReason.MANUAL,
                             source="bench", at=STARTED)
        issue_id = issue_store.create(conn, list_id="w", kind=IssueKind.DIGEST, subject="S",
                                      preheader="", intro_md="", article_ids=[], at=STARTED)
        issue_store.transition(conn, issue_id, IssueState.QUEUED, STARTED)
        issue_store.transition(conn, issue_id, IssueState.SENDING, STARTED, started_at=STARTED)
    members = (Recipient(f"reader{i}@example.org", f"Reader {i}", {}, "w") for i in range(count))
    audience.freeze_audience(store.engine, issue_id, members, batch_size=1000, at=STARTED)
    with store.engine.begin() as conn:
        ids = list(conn.execute(select(batches.c.id).where(batches.c.issue_id == issue_id)
                                .order_by(batches.c.seq)).scalars())
        sent = ids[: len(ids) // 2]
        done_at = STARTED + timedelta(seconds=30)
        conn.execute(update(batches).where(batches.c.id.in_(sent))
                     .values(state=str(BatchState.SENT), updated_at=done_at))
        conn.execute(update(recipients).where(recipients.c.batch_id.in_(sent[::2]))
                     .values(status=str(DeliveryStatus.SENT), provider_message_id="<id>"))
        conn.execute(update(recipients).where(recipients.c.batch_id.in_(sent),
                                              recipients.c.id % 997 == 0)
                     .values(status=str(DeliveryStatus.FAILED), error="550 no such user"))
    return issue_id


def timed(run: Callable[[], object], times: int) -> tuple[float, float]:
    """Median and best wall time of ``run``, in milliseconds."""
    found = []
    for _ in range(times):
        started = time.perf_counter()
        run()
        found.append((time.perf_counter() - started) * 1000)
    return statistics.median(found), min(found)


def reads(url: str, count: int, times: int) -> None:
    store = Store.open(url, clock=lambda: STARTED + timedelta(seconds=45))
    started = time.perf_counter()
    issue_id = mid_send(store, count)
    print(f"ledger                 {count:,} recipients mid-send, made in "
          f"{time.perf_counter() - started:.1f} s")
    progress = report.progress(store, issue_id)
    print(f"progress               {json.dumps(progress.as_dict())}")
    figures: list[tuple[str, Callable[[], object]]] = [
        ("progress()", lambda: report.progress(store, issue_id)),
        ("recipients: first page", lambda: report.recipients(store, issue_id)),
        ("recipients: a deep page", lambda: report.recipients(
            store, issue_id, after="reader777777@example.org")),
        ("recipients: prefix reader12345", lambda: report.recipients(
            store, issue_id, query="reader12345")),
        ("recipients: prefix READER9", lambda: report.recipients(
            store, issue_id, query="READER9")),
        ("recipients: status failed (1 in 997)", lambda: report.recipients(
            store, issue_id, status="failed")),
        ("recipients: failed, prefix reader5", lambda: report.recipients(
            store, issue_id, status="failed", query="reader5")),
        ("recipients: status sent (half)", lambda: report.recipients(
            store, issue_id, status="sent")),
        ("recipients: status queued, from a", lambda: report.recipients(
            store, issue_id, status="queued")),
        ("recipients: status queued, from reader6", lambda: report.recipients(
            store, issue_id, status="queued", after="reader6")),
        ("recipients: status suppressed", lambda: report.recipients(
            store, issue_id, status="suppressed")),
        ("report()", lambda: report.report(store, issue_id)),
    ]
    print(f"{'read':<42} {'median':>9} {'best':>9}   ({times} runs)")
    for label, run in figures:
        median, best = timed(run, times)
        print(f"{label:<42} {median:>7.1f}ms {best:>7.1f}ms")
    store.close()


# -- a real send, watched or not ------------------------------------------------------------
def watcher(url: str, stop: Path) -> None:
    """Call ``progress`` on the issue being sent every ``POLL_SECONDS`` until ``stop``
    exists; print the calls and the CPU they took, as JSON."""
    store = Store.open(url)
    calls, cpu = 0, 0.0
    while not stop.exists():
        tick = time.monotonic()
        before = time.process_time()
        with store.engine.connect() as conn:
            sending = issue_store.find(conn, states_in=[IssueState.SENDING], limit=1)
        if sending:
            report.progress(store, sending[0].id)
            calls += 1
        cpu += time.process_time() - before
        time.sleep(max(0.0, POLL_SECONDS - (time.monotonic() - tick)))
    print(json.dumps({"calls": calls, "cpu": cpu}))


def watched_sends(count: int) -> None:
    import send as send_bench  # bench/send.py: its publication, fake server and send

    with tempfile.TemporaryDirectory() as tmp:
        home = send_bench.make_home(Path(tmp), count)
        url = f"sqlite:///{home / 'var' / 'bench.db'}"
        port = send_bench.free_port()
        fake = send_bench.start_fake(port)
        try:
            env = send_bench.environment(port, url, 2)
            send_bench.validate_members(home, env)
            articles: list[int] | None = None
            for watched in (False, True, False, True):
                stop = Path(tmp) / "stop"
                stop.unlink(missing_ok=True)
                watching = subprocess.Popen(
                    [sys.executable, __file__, "--watcher", url, str(stop)],
                    stdout=subprocess.PIPE, text=True,
                ) if watched else None
                run = send_bench.send_once(home, env, articles)
                articles = run.articles
                stop.touch()
                spent = json.loads(watching.communicate(timeout=60)[0]) if watching else None
                what = (f"watched: {spent['calls']} calls, {spent['cpu']:.3f} s CPU = "
                        f"{spent['cpu'] / run.elapsed:.2%} of the send's time" if spent
                        else "alone")
                print(f"send of {count:,}: {run.elapsed:6.2f} s  {what}")
        finally:
            fake.terminate()
            fake.wait(10)
    print(f"python speed           {send_bench.python_speed():.1f} µs for sum(range(1000))")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--watcher":
        watcher(sys.argv[2], Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--database", default="",
                        help="a database URL, used in a schema of its own on PostgreSQL "
                        "(default: a SQLite file)")
    parser.add_argument("--times", type=int, default=7, help="runs of each read")
    parser.add_argument("--watch-send", action="store_true",
                        help="time real sends, alone and watched")
    args = parser.parse_args()
    if args.watch_send:
        watched_sends(args.recipients)
        return
    import send as send_bench  # its scratch schema on PostgreSQL, dropped after

    with tempfile.TemporaryDirectory() as tmp, \
            send_bench.database_for_bench(args.database) as given:
        reads(given or f"sqlite:///{tmp}/reads.db", args.recipients, args.times)


if __name__ == "__main__":
    main()
