"""One send shared by 1, 2 and 4 ``newsletter worker`` processes on PostgreSQL; print figures.

    python bench/workers.py --recipients 1000000
    python bench/workers.py --recipients 100000 --workers 1,2 --explain

Each run gets a PostgreSQL schema of its own and a fresh fake Mailgun in counts-only mode.
The audience is frozen by this script first (timed on its own: one transaction, the same
whoever does it), then the workers are started together and timed until the last exits.
Every run is checked: each recipient accepted exactly once, the ledger all ``sent``.
The single-process send on SQLite (``bench/send.py``'s path) is measured for comparison.
With ``--explain``, the ledger's hot queries are run under ``EXPLAIN ANALYZE`` against the
frozen audience and their plans printed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine, event, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from send import (
    REPO,
    children_cpu,
    cpu_seconds,
    environment,
    free_port,
    make_home,
    python_speed,
    send_once,
    start_fake,
    validate_members,
)

from newsletter.config import load_settings
from newsletter.models import BatchState, DeliveryStatus
from newsletter.publisher import Publisher
from newsletter.store import Store, ledger, tally, utcnow

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@contextmanager
def schema(admin_url: str) -> Iterator[str]:
    """A database URL whose tables live in a new schema, dropped afterwards."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        yield f"{admin_url}?options=-csearch_path%3D{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


@contextmanager
def fake_mailgun() -> Iterator[tuple[int, int]]:
    """The fake's port and process id."""
    port = free_port()
    fake = start_fake(port)
    try:
        yield port, fake.pid
    finally:
        fake.terminate()
        fake.wait(10)
        if fake.stdout is not None:
            fake.stdout.close()


def queue_and_freeze(home: Path, env: dict[str, str]) -> tuple[int, float]:
    """Queue the issue and freeze its audience; returns the issue and the freeze time."""
    settings = load_settings(home, environ=env)
    store = Store.open(settings.database_url)
    try:
        publisher = Publisher(settings, store)
        publisher.collect()
        (issue_id,) = publisher.draft("bench")
        publisher.queue(issue_id)
        started = time.perf_counter()
        publisher.start(issue_id)
        return issue_id, time.perf_counter() - started
    finally:
        store.close()


def postgres_cpu() -> float:
    """CPU time of every PostgreSQL server process on this machine."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                is_postgres = (entry / "comm").read_text().strip() == "postgres"
            except OSError:
                continue
            total += cpu_seconds(int(entry.name), with_children=True) if is_postgres else 0.0
    return total


def run_workers(home: Path, env: dict[str, str], count: int, logs: Path) -> float:
    """Start ``count`` workers with ``--once`` together; seconds until the last one exits."""
    process_env = {**os.environ, **env, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "newsletter", "--home", str(home), "worker", "--once"]
    started = time.perf_counter()
    running = []
    for n in range(count):
        with (logs / f"worker-{count}-{n}.log").open("wb") as out:
            running.append(subprocess.Popen(command, env=process_env, stdout=out, stderr=out))
    codes = [p.wait() for p in running]
    elapsed = time.perf_counter() - started
    if codes != [0] * count:
        raise SystemExit(f"workers exited with {codes}; see {logs}")
    return elapsed


def check(database: str, issue_id: int, port: int, recipients: int) -> None:
    """Every recipient accepted once by the provider and recorded as sent."""
    summary = requests.get(f"http://127.0.0.1:{port}/_fake/record?summary=1", timeout=60).json()
    store = Store.open(database)
    try:
        with store.engine.connect() as conn:
            counts = tally.status_counts(conn, issue_id)
    finally:
        store.close()
    accepted = summary["accepted"].get("mailgun", 0)
    duplicates = summary["recipients_with_duplicates"].get("mailgun", 0)
    if counts != {"sent": recipients} or accepted != recipients or duplicates:
        raise SystemExit(f"wrong outcome: ledger {counts}, provider {summary}")


def postgres_run(home: Path, args: argparse.Namespace, count: int) -> dict[str, float]:
    with schema(args.database) as database, fake_mailgun() as (port, fake_pid):
        env = {
            **environment(port, database, args.concurrency),
            "NEWSLETTER_SECRET_KEY": "bench-signing-key",
        }
        issue_id, freeze = queue_and_freeze(home, env)
        if args.explain and count == min(args.workers):
            explain_hot_paths(database, issue_id)
        before = (children_cpu(), cpu_seconds(fake_pid), postgres_cpu())
        send = run_workers(home, env, count, home.parent)
        after = (children_cpu(), cpu_seconds(fake_pid), postgres_cpu())
        check(database, issue_id, port, args.recipients)
    workers, fake, postgres = (b - a for a, b in zip(before, after, strict=True))
    return {"freeze": freeze, "send": send, "workers": workers, "fake": fake, "pg": postgres}


# -- query plans --------------------------------------------------------------------------------
def captured(database: str, work: Callable[[Any], object]) -> list[tuple[str, Any]]:
    """The SQL and parameters ``work(conn)`` sends, in a transaction that is rolled back."""
    store = Store.open(database)
    seen: list[tuple[str, Any]] = []

    def capture(_c: Any, _cur: Any, statement: str, parameters: Any, *_rest: Any) -> None:
        seen.append((statement, parameters))

    try:
        with store.engine.connect() as conn:
            event.listen(conn, "before_cursor_execute", capture)
            with conn.begin() as transaction:
                work(conn)
                transaction.rollback()
    finally:
        store.close()
    return seen


def explain_hot_paths(database: str, issue_id: int) -> None:
    store = Store.open(database)
    with store.engine.connect() as conn:
        batch_id = ledger.batches_in(conn, issue_id, BatchState.PENDING)[0]
    store.close()
    now = time.time()
    queries: dict[str, Callable[[Any], object]] = {
        "claim": lambda c: ledger.claim(
            c, issue_id, owner="bench", now=now, lease_seconds=60, at=utcnow()
        ),
        "rows_of": lambda c: ledger.rows_of(c, batch_id),
        "mark_rows": lambda c: ledger.mark_rows(c, batch_id, DeliveryStatus.SENT, at=utcnow()),
        "status_counts": lambda c: tally.status_counts(c, issue_id),
        "open_work": lambda c: tally.open_work(c, issue_id),
        "problems": lambda c: tally.problems(c, issue_id),
    }
    raw = create_engine(database)
    for name, work in queries.items():
        for statement, parameters in captured(database, work):
            with raw.connect() as conn, conn.begin() as transaction:
                cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
                plan = [row[0] for row in cursor.fetchall()]
                transaction.rollback()
            print(f"\n-- {name}: {' '.join(statement.split())[:160]}")
            print("\n".join(f"   {line}" for line in plan))
    raw.dispose()


# -- main ---------------------------------------------------------------------------------------
def sqlite_run(home: Path, args: argparse.Namespace) -> float:
    database = f"sqlite:///{home / 'var' / 'bench.db'}"
    with fake_mailgun() as (port, _):
        env = {
            **environment(port, database, args.concurrency),
            "NEWSLETTER_SECRET_KEY": "bench-signing-key",
            "NEWSLETTER_PROCESSES": "1",  # one process, as the one PostgreSQL worker is
        }
        run = send_once(home, env)
    if run.counts != {"sent": args.recipients}:
        raise SystemExit(f"wrong outcome on SQLite: {run.counts}")
    return run.elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--database", default=POSTGRES, help="PostgreSQL URL (admin rights)")
    parser.add_argument("--workers", default="1,2,4", help="worker counts to run, comma-separated")
    parser.add_argument("--concurrency", type=int, default=2, help="sender threads per worker")
    parser.add_argument("--explain", action="store_true", help="print the hot queries' plans")
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite comparison")
    args = parser.parse_args()
    args.workers = sorted(int(n) for n in args.workers.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        home = make_home(Path(tmp), args.recipients)
        database = f"sqlite:///{home / 'var' / 'bench.db'}"
        validate_members(home, environment(free_port(), database, args.concurrency))
        runs = {count: postgres_run(home, args, count) for count in args.workers}
        sqlite = None if args.no_sqlite else sqlite_run(home, args)
    report(args, runs, sqlite)


def report(
    args: argparse.Namespace, runs: dict[int, dict[str, float]], sqlite: float | None
) -> None:
    n = args.recipients
    base = runs[args.workers[0]]["send"]
    print(f"\nrecipients {n:,}; {args.concurrency} sender threads per worker; fake Mailgun")
    print(f"python speed: {python_speed():.1f} µs for sum(range(1000)) (machine speed)")
    print(
        "workers  freeze s  send s  send rec/s  speed-up  end-to-end rec/s"
        "  CPU s: workers  fake  PostgreSQL"
    )
    for count, run in runs.items():
        total = run["freeze"] + run["send"]
        print(
            f"{count:>7}  {run['freeze']:>8.1f}  {run['send']:>6.1f}  {n / run['send']:>10,.0f}"
            f"  {base / run['send']:>7.2f}x  {n / total:>16,.0f}"
            f"  {run['workers']:>14.1f}  {run['fake']:>4.1f}  {run['pg']:>10.1f}"
        )
    if sqlite is not None:
        print(
            f"SQLite, one process (queued → done, freeze included): {sqlite:.1f} s, "
            f"{n / sqlite:,.0f} rec/s"
        )
        if 1 in runs:
            pg = runs[1]["freeze"] + runs[1]["send"]
            print(f"PostgreSQL 1 worker end-to-end / SQLite: {pg / sqlite:.2f}x the time")


if __name__ == "__main__":
    main()
