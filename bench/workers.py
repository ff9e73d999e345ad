"""One send shared by 1, 2 and 4 ``newsletter worker`` processes on PostgreSQL; print figures.

    python bench/workers.py --recipients 1000000
    python bench/workers.py --recipients 1000000 --workers 1,2 --mode whole --repeat 2
    python bench/workers.py --recipients 100000 --workers 1,2 --explain

Each run gets a PostgreSQL schema of its own and a fresh fake Mailgun in counts-only mode.
Two modes (``--mode``, both by default):

- ``split``: the audience is frozen by this script first, timed on its own, then the
  workers are started together and timed until the last exits: the send alone.
- ``whole``: the issue is queued and the workers started: one freezes while the others,
  and its own sender threads, send what is committed (``delivery.beside``); timed from
  queued until the last worker exits, as a publisher sees it.

Every run is checked: each recipient accepted exactly once, the ledger all ``sent``.
Besides wall times, each phase's CPU is printed for every party: the workers, this
script (its freeze), the fake server, and the PostgreSQL backends serving this run alone
(found by their ``application_name``; other work on the server is not counted). On a
machine shared with other work those are the steadier figures, and from them the bench
states what hosts with a core each would reach (``--hosts``): the CPU a recipient costs
each party, divided by what each has.
The single-process send on SQLite (``bench/send.py``'s path) is measured for comparison.
With ``--explain``, the ledger's hot queries are run under ``EXPLAIN ANALYZE`` against the
frozen audience and their plans printed.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
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
    queued_issue,
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
        # The schema's name as the application's too: its backends are found by it.
        yield f"{admin_url}?options=-csearch_path%3D{name}&application_name={name}"
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


def queue_and_freeze(home: Path, env: dict[str, str], freeze: bool) -> tuple[int, float, float]:
    """Queue the issue and, with ``freeze``, freeze its audience; returns the issue, the
    freeze's wall time and this process's CPU for it."""
    settings = load_settings(home, environ=env)
    store = Store.open(settings.database_url)
    try:
        publisher = Publisher(settings, store)
        issue_id = queued_issue(publisher)
        if not freeze:
            return issue_id, 0.0, 0.0
        cpu, started = own_cpu(), time.perf_counter()
        publisher.start(issue_id)
        return issue_id, time.perf_counter() - started, own_cpu() - cpu
    finally:
        store.close()


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class BackendCpu:
    """CPU seconds of the PostgreSQL backends whose ``application_name`` is ``name``.

    A backend's time is read from ``/proc`` while it lives: a poller notes each one's
    latest figure every ``every`` seconds, so what a backend did in its last moment before
    it ended may be missed (at most ``every`` seconds of it)."""

    def __init__(self, admin_url: str, name: str, every: float = 0.1) -> None:
        self._engine = create_engine(admin_url)
        self._name = name
        self._every = every
        self._seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> BackendCpu:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._engine.dispose()

    def total(self) -> float:
        self._sample()
        return sum(self._seen.values())

    def _poll(self) -> None:
        while not self._stop.wait(self._every):
            self._sample()

    def _sample(self) -> None:
        query = text("SELECT pid FROM pg_stat_activity WHERE application_name = :name")
        with self._engine.connect() as conn:
            pids = list(conn.execute(query, {"name": self._name}).scalars())
        for pid in pids:
            spent = cpu_seconds(pid)
            if spent:
                self._seen[pid] = max(spent, self._seen.get(pid, 0.0))


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


def postgres_run(
    home: Path, args: argparse.Namespace, count: int, whole: bool
) -> dict[str, float]:
    """One run; its wall times and CPU seconds by phase and party."""
    with schema(args.database) as database, fake_mailgun() as (port, fake_pid):
        name = database.rpartition("application_name=")[2]
        env = {
            **environment(port, database, args.concurrency),
            "NEWSLETTER_SECRET_KEY": "bench-signing-key",
        }
        with BackendCpu(args.database, name) as backends:
            issue_id, freeze, freeze_cpu = queue_and_freeze(home, env, freeze=not whole)
            freeze_pg = backends.total()
            if args.explain and count == min(args.workers) and not whole:
                explain_hot_paths(database, issue_id)
            before = (children_cpu(), cpu_seconds(fake_pid), backends.total())
            send = run_workers(home, env, count, home.parent)
            after = (children_cpu(), cpu_seconds(fake_pid), backends.total())
        check(database, issue_id, port, args.recipients)
    workers, fake, postgres = (b - a for a, b in zip(before, after, strict=True))
    return {"freeze": freeze, "send": send, "workers": workers, "fake": fake, "pg": postgres,
            "freeze_cpu": freeze_cpu, "freeze_pg": freeze_pg}


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
def sqlite_run(home: Path, args: argparse.Namespace) -> tuple[float, float, float]:
    """The wall time of one process's send on SQLite, its CPU and the fake server's."""
    # A database of its own each time: a second draft in one would find no new article.
    database = f"sqlite:///{home / 'var' / f'bench-{uuid.uuid4().hex[:8]}.db'}"
    with fake_mailgun() as (port, fake_pid):
        env = {
            **environment(port, database, args.concurrency),
            "NEWSLETTER_SECRET_KEY": "bench-signing-key",
            "NEWSLETTER_PROCESSES": "1",  # one process, as the one PostgreSQL worker is
        }
        cpu, fake = own_cpu(), cpu_seconds(fake_pid)
        run = send_once(home, env)
        cpu, fake = own_cpu() - cpu, cpu_seconds(fake_pid) - fake
    if run.counts != {"sent": args.recipients}:
        raise SystemExit(f"wrong outcome on SQLite: {run.counts}")
    return run.elapsed, cpu, fake


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--database", default=POSTGRES, help="PostgreSQL URL (admin rights)")
    parser.add_argument("--workers", default="1,2,4", help="worker counts to run, comma-separated")
    parser.add_argument("--concurrency", type=int, default=2, help="sender threads per worker")
    parser.add_argument("--mode", choices=["split", "whole", "both"], default="both",
                        help="split: the bench freezes, then the workers send; whole: the "
                        "workers freeze and send")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, alternating")
    parser.add_argument("--hosts", default="1,2,4,8", help="host counts for the projection")
    parser.add_argument("--explain", action="store_true", help="print the hot queries' plans")
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite comparison")
    args = parser.parse_args()
    args.workers = sorted(int(n) for n in args.workers.split(","))
    modes = ["split", "whole"] if args.mode == "both" else [args.mode]
    runs: list[tuple[str, int, dict[str, float]]] = []
    sqlite: list[tuple[float, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        home = make_home(Path(tmp), args.recipients)
        database = f"sqlite:///{home / 'var' / 'bench.db'}"
        validate_members(home, environment(free_port(), database, args.concurrency))
        for _ in range(args.repeat):
            for mode in modes:
                for count in args.workers:
                    load = os.getloadavg()[0]
                    run = postgres_run(home, args, count, whole=mode == "whole")
                    runs.append((mode, count, {**run, "load": load}))
                    print(f"{mode} {count}: {run}", flush=True)  # kept if a later run fails
            if not args.no_sqlite:
                sqlite.append(sqlite_run(home, args))
                print(f"SQLite: {sqlite[-1]}", flush=True)
    report(args, runs, sqlite)

def report(
    args: argparse.Namespace,
    runs: list[tuple[str, int, dict[str, float]]],
    sqlite: list[tuple[float, float, float]],
) -> None:
    n = args.recipients
    print(f"\nrecipients {n:,}; {args.concurrency} sender threads per worker; fake Mailgun; "
          f"{os.cpu_count()} cores")
    print(f"python speed: {python_speed():.1f} µs for sum(range(1000)) (machine speed); "
          f"load average now {os.getloadavg()[0]:.1f}")
    print("mode   workers  load  freeze s  send s  total s  speed-up (send; total)"
          "  CPU s: freeze (bench, PostgreSQL)  send (workers, PostgreSQL, fake)")
    base: dict[str, tuple[float, float]] = {}
    for mode, count, run in runs:
        total = run["freeze"] + run["send"]
        if count == args.workers[0]:
            base[mode] = (run["send"], total)
        first_send, first_total = base[mode]
        speedup = (f"{first_send / run['send']:.2f}x; {first_total / total:.2f}x"
                   if mode == "split" else f"{first_total / total:.2f}x")
        freeze_cpu = (f"{run['freeze_cpu']:5.1f}, {run['freeze_pg']:5.1f}" if mode == "split"
                      else "   (in the workers)")
        print(f"{mode:<6} {count:>7}  {run['load']:>4.1f}  {run['freeze']:>8.1f}  "
              f"{run['send']:>6.1f}  {total:>7.1f}  {speedup:>22}"
              f"  {freeze_cpu:>33}  {run['workers']:>5.1f}, {run['pg']:>5.1f}, {run['fake']:>4.1f}")
    for elapsed, cpu, fake in sqlite:
        print(f"SQLite, one process (queued → done, freeze included): {elapsed:.1f} s, "
              f"{n / elapsed:,.0f} rec/s; CPU s: process {cpu:.1f}, fake {fake:.1f}")
    compare_with_sqlite(args, runs, sqlite)
    project(args, runs)


def compare_with_sqlite(
    args: argparse.Namespace,
    runs: list[tuple[str, int, dict[str, float]]],
    sqlite: list[tuple[float, float, float]],
) -> None:
    if not sqlite:
        return
    for mode, count, run in runs:
        if count != 1:
            continue
        for elapsed, cpu, fake in sqlite:
            pg = run["freeze"] + run["send"]
            pg_cpu = run["freeze_cpu"] + run["freeze_pg"] + run["workers"] + run["pg"] + run["fake"]
            print(f"PostgreSQL 1 worker ({mode}) / SQLite: {pg / elapsed:.2f}x the time, "
                  f"{pg_cpu / (cpu + fake):.2f}x the CPU")


def project(args: argparse.Namespace, runs: list[tuple[str, int, dict[str, float]]]) -> None:
    """What hosts of a core each would reach, from the CPU a recipient cost each party.

    A worker is one process: its sender threads share one interpreter lock, so it uses a
    core at most, and on hosts of its own each worker brings its core. The freeze is one
    worker's job, its chunks written one after another by one database backend: however
    many hosts send, a send ends no sooner than that backend's CPU for the freeze. The
    database's CPU per recipient (the freeze's and the send's) sets what it can take on
    the cores it has (as many as this machine has, in the projection)."""
    singles = [run for mode, count, run in runs if mode == "split" and count == 1]
    if not singles:
        return
    n = args.recipients
    worker = min(r["workers"] for r in singles) / n  # the least disturbed run
    pg_send = min(r["pg"] for r in singles) / n
    pg_freeze = min(r["freeze_pg"] for r in singles) / n
    reading = min(r["freeze_cpu"] for r in singles) / n
    db_cores = os.cpu_count() or 1
    print(f"\nper recipient, CPU: a worker sending {worker * 1e6:.1f} µs, reading the list "
          f"for the freeze {reading * 1e6:.1f} µs; PostgreSQL {pg_freeze * 1e6:.1f} µs in the "
          f"freeze, {pg_send * 1e6:.1f} µs in the send")
    print(f"projection, a worker per host of one core, PostgreSQL on {db_cores} cores of its "
          "own, sending beside the freeze (at least, each):")
    freeze = n * max(pg_freeze, reading)
    for hosts in (int(h) for h in args.hosts.split(",")):
        # The freezing worker sends too, with what its core has left after reading the list.
        workers = n * (worker + reading) / hosts
        database = n * (pg_freeze + pg_send) / db_cores
        total = max(freeze, workers, database)
        bound = {freeze: "the freeze", workers: "the workers", database: "PostgreSQL"}[total]
        print(f"  {hosts} host(s): {total:.1f} s end to end ({n / total:,.0f} recipients/s), "
              f"bound by {bound}")

if __name__ == "__main__":
    main()
