"""Send one issue to N synthetic recipients through the local fake Mailgun; print figures.

    python bench/send.py --recipients 100000
    python bench/send.py --recipients 1000000 --database postgresql+psycopg://postgres@127.0.0.1/test
    python bench/send.py --recipients 100000 --concurrency 8 --latency-ms 150-400 --no-extras
    python bench/send.py --recipients 1000000 --bad-rows 10            # a list not quite clean
    python bench/send.py --recipients 1000000 --bad-rows 10 --cleaned  # the same list, cleaned
    python bench/send.py --recipients 1000000 --frozen-first  # the second send's sends alone
    python bench/send.py --recipients 1000000 --signups 2000  # readers signed up in between

``--latency-ms`` makes the fake provider hold each request as a provider across a real
network does: what the loopback hides, and what NEWSLETTER_CONCURRENCY is there to overlap.

On PostgreSQL the bench works in a schema of its own, dropped when it ends.

Prints: wall time from "queued" to every batch acknowledged and the ledger committed,
recipients/s, the first send's time, CPU and share of the cores kept busy (its CPU over the
cores and its wall time: what compares across machines of different speeds), the sender's
peak RSS, the same number of pre-built batch POSTs with no pipeline (the loopback
ceiling), and the local per-recipient merge rate (what Postmark- and Resend-style providers
need: one merged HTML per recipient).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import requests
import sqlalchemy

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from newsletter.config import load_settings  # noqa: E402
from newsletter.devtools.scratchschema import scratch_schema  # noqa: E402
from newsletter.lists.signups import append_rows  # noqa: E402
from newsletter.models import Subscriber  # noqa: E402
from newsletter.publisher import Publisher  # noqa: E402
from newsletter.store import Store  # noqa: E402
from newsletter.store import issues as issue_store  # noqa: E402

PUBLICATION = """\
[publication]
name = "Bench Weekly"
base_url = "https://bench.example.org"
from_email = "editor@bench.example.org"
from_name = "Bench Weekly"
postal_address = "1 Test Street, Testville"
unsubscribe_mailto = "unsubscribe@bench.example.org"

[sources.articles]
type = "folder"
path = "articles"

[lists.bench]
title = "Bench digest"
members = ["bench.csv"]
sources = ["articles"]
cadence = "digest"
approval = "editor"
template = "digest"
signups = "bench-signups.csv"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: The parts of the bench list's addresses. A real list is in sign-up order, which is no
#: order of its addresses; a list written in address order (reader0, reader1 …) hid most of
#: what the ledger's index and the address cache cost (a 1,000,000-member second send: 8 s
#: in that order, 34 s in this one before the freeze wrote in address order).
FIRST_NAMES = ("amelia", "ben", "chiara", "dev", "elin", "farid", "grace", "hugo", "ines",
               "jonas", "kemi", "lars", "mei", "noor", "omar", "priya")
LAST_NAMES = ("adler", "baptiste", "costa", "dubois", "eriksen", "fischer", "garcia", "haddad",
              "ito", "jensen", "kowalski", "lindqvist", "moreau", "novak", "okafor", "petrov")
DOMAINS = ("bench.example.org", "mail.example.net", "post.example.com", "example.org")


def member_address(i: int) -> tuple[str, str]:
    """Member ``i``'s address, split at the "@": unique, and in no order of ``i``
    (Knuth's multiplicative hash, a bijection on 32 bits, scatters neighbours)."""
    h = (i * 2_654_435_761) % 2**32
    first, last = FIRST_NAMES[h % 16], LAST_NAMES[(h >> 4) % 16]
    return f"{first}.{last}.{h:08x}", DOMAINS[(h >> 8) % 4]


def member_rows(recipients: int, bad_percent: float, cleaned: bool) -> Iterator[str]:
    """The bench list's rows. ``bad_percent`` of them (spread evenly) are refused addresses
    and one in a hundred of the rest has its domain in mixed case (sent to its normalised
    form); ``cleaned`` leaves the refused rows out and writes the others normalised, as a
    publisher who fixed the file would."""
    bad_every = 100 / bad_percent if bad_percent else 0.0
    next_bad = 0.0
    for i in range(recipients):
        local, domain = member_address(i)
        if bad_every and i >= next_bad:
            next_bad += bad_every
            if not cleaned:
                yield f"{local}@@{domain},Reader {i},Kellmouth\n"
            continue
        if bad_every and i % 100 == 99 and not cleaned:
            domain = domain.title()
        yield f"{local}@{domain},Reader {i},Kellmouth\n"


def example_home(root: Path) -> Path:
    """A copy of this repository's example publication (lists, templates, articles) in
    ``root/publication``."""
    home = root / "publication"
    for name in ("subscribers", "templates", "articles"):
        shutil.copytree(REPO / name, home / name)
    return home


def make_home(root: Path, recipients: int, bad_percent: float = 0.0, cleaned: bool = False) -> Path:
    home = root / "home"
    (home / "subscribers").mkdir(parents=True)
    shutil.copytree(REPO / "templates", home / "templates")
    shutil.copytree(REPO / "articles", home / "articles")
    (home / "subscribers" / "publication.toml").write_text(PUBLICATION)
    with (home / "subscribers" / "bench.csv").open("w") as out:
        out.write("email,name,city\n")
        out.writelines(member_rows(recipients, bad_percent, cleaned))
    return home


def start_fake(port: int, latency_ms: str = "") -> subprocess.Popen[bytes]:
    latency = ["--latency-ms", latency_ms] if latency_ms else []
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "newsletter.devtools.fakeprovider",
            "--port",
            str(port),
            "--counts-only",
            *latency,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    for _ in range(100):
        try:
            requests.get(f"http://127.0.0.1:{port}/_fake/record?summary=1", timeout=1)
            return proc
        except requests.ConnectionError:
            time.sleep(0.05)
    raise SystemExit("fake provider did not start")


def environment(port: int, database: str, concurrency: int) -> dict[str, str]:
    return {
        "NEWSLETTER_PROVIDER": "mailgun",
        "NEWSLETTER_DATABASE_URL": database,
        "NEWSLETTER_CONCURRENCY": str(concurrency),
        "MAILGUN_API_KEY": "mg-test-key",
        "MAILGUN_DOMAIN": "mg.example.org",
        "MAILGUN_BASE_URL": f"http://127.0.0.1:{port}",
        "NEWSLETTER_LOOKBACK_DAYS": "3650",
    }


def validate_members(home: Path, env: dict[str, str]) -> float:
    """Read the bench list once, as a first send does: fills the address cache and vouches
    for the file, so that later timings are of sending, not of first-time validation."""
    settings = load_settings(home, environ=env)
    store = Store.open(settings.database_url)
    try:
        publisher = Publisher(settings, store)
        started = time.perf_counter()
        for _ in publisher.audience(publisher.config.list("bench")):
            pass
        return time.perf_counter() - started
    finally:
        store.close()


def cpu_seconds(pid: int, *, with_children: bool = False) -> float:
    """User + system CPU time of a running process (Linux ``/proc``), and optionally of its
    children that have ended (how the time of PostgreSQL's closed backends is kept)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:  # it ended meanwhile
        return 0.0
    ticks = sum(int(f) for f in fields[11:15 if with_children else 13])
    return ticks / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_now(fake_pid: int) -> tuple[float, float, float]:
    """CPU seconds so far: this process, its ended children (the helpers), the fake server."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, children_cpu(), cpu_seconds(fake_pid)


def busy_share(cpu: list[float], wall: float) -> float:
    """How much of the machine's cores the parties' CPU seconds (``cpu_now``'s three) filled
    over ``wall`` seconds: wall time is about the CPU over the cores and this share, so a
    slower machine changes the CPU, and a change in how the parties overlap changes this."""
    return sum(cpu) / ((os.cpu_count() or 1) * wall) if wall > 0 else 0.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def python_speed() -> float:
    """Microseconds for a fixed piece of pure Python (best of 20): to compare machines, since
    every figure here scales with it."""
    best = min(timeit.repeat("sum(range(1000))", number=2000, repeat=20))
    return best / 2000 * 1e6


class SendRun(NamedTuple):
    issue_id: int
    articles: list[int]
    elapsed: float  # queued → the ledger committed
    counts: dict[str, int]
    freeze: float  # until the audience was frozen (the first progress report)
    by_helpers: list[int]  # recipients each helper process sent
    #: ``frozen_first``: the freeze before the clock, wall and this process's CPU seconds
    frozen_before: tuple[float, float] = (0.0, 0.0)


def sign_up(home: Path, first: int, count: int) -> None:
    """Readers ``first`` onwards (after the list's members) confirmed, as the sign-up form
    appends them to the list's sign-up file."""
    readers = (member_address(i) for i in range(first, first + count))
    append_rows(home / "subscribers" / "bench-signups.csv",
                [Subscriber(f"{local}@{domain}", "New Reader") for local, domain in readers])


def queued_issue(publisher: Publisher, article_ids: list[int] | None = None) -> int:
    """A new issue to the bench's list, of the articles collected (or ``article_ids``),
    queued."""
    publisher.collect()
    (issue_id,) = publisher.draft("bench", article_ids=article_ids)
    publisher.queue(issue_id)
    return issue_id


def send_once(
    home: Path,
    env: dict[str, str],
    article_ids: list[int] | None = None,
    *,
    frozen_first: bool = False,
    at_start: Callable[[], None] = lambda: None,
) -> SendRun:
    """Draft, queue and send one issue; the time runs from queued to the ledger committed
    (``at_start`` is called just before it starts). ``frozen_first``: the issue is started,
    and its audience frozen, before the clock starts: the time is the sends' alone."""
    settings = load_settings(home, environ=env)
    store = Store.open(settings.database_url)
    publisher = Publisher(settings, store)
    issue_id = queued_issue(publisher, article_ids)
    frozen_before = (0.0, 0.0)
    if frozen_first:
        wall, cpu = time.perf_counter(), time.process_time()
        publisher.start(issue_id)
        frozen_before = (time.perf_counter() - wall, time.process_time() - cpu)
        with store.engine.connect() as conn:
            if not issue_store.get(conn, issue_id).audience_frozen:
                raise SystemExit(f"issue {issue_id}: started, but its audience is not frozen")
    at_start()
    frozen: list[float] = []

    def progress(sent: int) -> None:
        # The parent reports 0 once the audience is frozen; helpers send meanwhile.
        if sent == 0 and not frozen:
            frozen.append(time.perf_counter())

    started = time.perf_counter()
    report = publisher.send_issue(issue_id, progress=progress)
    elapsed = time.perf_counter() - started
    with store.engine.connect() as conn:
        articles = issue_store.article_ids(conn, issue_id)
    store.close()
    return SendRun(
        issue_id, articles, elapsed, report.counts, frozen[0] - started, report.by_helpers,
        frozen_before,
    )


def loopback_ceiling(port: int, recipients: int, concurrency: int) -> float:
    """The same number of 1,000-recipient Mailgun POSTs, built beforehand: no pipeline."""
    variables = {"@".join(member_address(i)): {"name": f"Reader {i}"} for i in range(1000)}
    body = [
        ("from", "Bench <editor@bench.example.org>"),
        ("to", ", ".join(variables)),  # one field, as the Mailgun provider sends it
        ("subject", "Bench"),
        ("text", "Hi %recipient.name%"),
        ("html", "<p>Hi %recipient.name%</p>" * 200),
        ("recipient-variables", json.dumps(variables)),
    ]
    requests.post(f"http://127.0.0.1:{port}/_fake/reset", timeout=10)
    calls = max(1, recipients // 1000)
    url = f"http://127.0.0.1:{port}/v3/mg.example.org/messages"

    files = [(name, (None, value.encode())) for name, value in body]

    def post(_: int) -> None:
        with requests.Session() as session:
            session.trust_env = False
            for _ in range(calls // concurrency):
                session.post(
                    url, files=files, auth=("api", "mg-test-key"), timeout=30
                ).raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(post, range(concurrency)))
    return time.perf_counter() - started


def merge_rate(home: Path, env: dict[str, str], seconds: float = 3.0) -> tuple[float, int]:
    """Recipients per second for one merged HTML + text per recipient, one core."""
    settings = load_settings(home, environ=env)
    store = Store.open(settings.database_url)
    publisher = Publisher(settings, store)
    issue_id = publisher.due_issues()[0] if publisher.due_issues() else None
    with store.engine.connect() as conn:
        last = issue_store.find(conn, limit=1)[0]
    prepared = publisher.prepared(issue_id or last.id)
    make = publisher.recipient_values()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        values = make(f"reader{count}@bench.example.org", f"Reader {count}", "bench", {"city": "K"})
        prepared.merge(values)
        count += 1
    store.close()
    return count / (time.perf_counter() - started), len(prepared.html.render(values).encode())


def ledger_floor(home: Path, env: dict[str, str], sent: SendRun, chunk: int = 5_000) -> float:
    """CPU seconds SQLite alone takes to write ``sent``'s ledger rows again, for a new issue:
    copied from the table by the freeze's statement, ``chunk`` rows to a transaction with
    their batches, foreign keys unchecked, as a freeze writes them, but with no Python per
    row. The least a freeze of this audience can cost on SQLite; the rest of a freeze is
    reading the list and handing its rows over."""
    settings = load_settings(home, environ=env)
    store = Store.open(settings.database_url)
    try:
        (issue_id,) = Publisher(settings, store).draft("bench", article_ids=sent.articles)
    finally:
        store.close()
    db = sqlite3.connect(str(sqlalchemy.make_url(settings.database_url).database),
                         isolation_level=None)
    try:
        db.execute("PRAGMA foreign_keys=OFF")
        ids = [i for (i,) in db.execute(
            "SELECT id FROM recipients WHERE issue_id = ? ORDER BY id", (sent.issue_id,))]
        started = time.process_time()
        for start in range(0, len(ids), chunk):
            _copy_ledger_chunk(db, issue_id, sent.issue_id, ids[start:start + chunk], start)
        spent = time.process_time() - started
        (copied,) = db.execute("SELECT count(*) FROM recipients WHERE issue_id = ?", (issue_id,))
        if copied[0] != len(ids):
            raise SystemExit(f"the ledger floor copied {copied[0]} rows of {len(ids)}")
        return spent
    finally:
        db.close()


def _copy_ledger_chunk(
    db: sqlite3.Connection, issue_id: int, source: int, ids: list[int], first: int
) -> None:
    batch = 1_000
    first_seq = first // batch
    db.execute("BEGIN IMMEDIATE")
    db.executemany(
        "INSERT INTO batches (issue_id, seq, state, size, attempts, idempotency_key, "
        "provider_batch_id, error, next_attempt_at, lease_owner, lease_until, updated_at) "
        "VALUES (?, ?, 'pending', ?, 0, ?, '', '', 0, '', 0, '2026-01-01 00:00:00')",
        [(issue_id, seq, min(batch, len(ids) - n), f"floor-{issue_id}-{seq}")
         for seq, n in enumerate(range(0, len(ids), batch), start=first_seq)],
    )
    # ``+r.issue_id``: the chunk's rows are found by their ids; on the issue's index SQLite
    # would walk all of the issue's rows for every chunk.
    db.execute(
        "INSERT INTO recipients (issue_id, batch_id, email, email_as_written, name, fields, "
        "list_id, status, provider_message_id, error) "
        "SELECT ?, b.id, r.email, r.email_as_written, r.name, r.fields, r.list_id, 'queued', "
        "'', '' FROM recipients r JOIN batches b ON b.issue_id = ? AND b.seq = ? + "
        "(r.id - ?) / ? WHERE +r.issue_id = ? AND r.id BETWEEN ? AND ? ORDER BY r.id "
        "ON CONFLICT (issue_id, email) DO NOTHING",
        (issue_id, issue_id, first_seq, ids[0], batch, source, ids[0], ids[-1]),
    )
    db.execute("COMMIT")


@contextmanager
def database_for_bench(database: str) -> Iterator[str]:
    """On PostgreSQL, a schema of the bench's own, dropped afterwards: each run starts empty
    and the database given is left as it was found. Other databases are used as given."""
    if not database or sqlalchemy.make_url(database).get_backend_name() != "postgresql":
        yield database
        return
    with scratch_schema(database, prefix="bench") as url:
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--database", default="", help="SQLAlchemy URL (default: SQLite file)")
    # Two: loopback has no latency for more threads to hide, and each extra thread only
    # adds contention for the interpreter lock (four ran 10-25 % slower here).
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument(
        "--merge-seconds", type=float, default=3.0, help="how long to time the local merge"
    )
    parser.add_argument(
        "--latency-ms",
        default="",
        metavar="LOW-HIGH",
        help="the fake provider holds each request this long, as across a real network "
        "(e.g. 150-400 for 1,000-recipient batches)",
    )
    parser.add_argument(
        "--no-extras",
        action="store_true",
        help="time the sends only: no loopback ceiling, no merge rate",
    )
    parser.add_argument(
        "--frozen-first", action="store_true",
        help="freeze the second issue's audience before its clock starts: time its sends alone",
    )
    parser.add_argument(
        "--bad-rows", type=float, default=0.0, metavar="PERCENT",
        help="make this share of the list's rows invalid (and 1 %% of the rest mixed-case)",
    )
    parser.add_argument(
        "--cleaned", action="store_true", help="with --bad-rows: the same list with them fixed"
    )
    parser.add_argument(
        "--signups", type=int, default=0, metavar="N",
        help="N readers sign up between the two sends (one did before the first)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, database_for_bench(args.database) as given:
        home = make_home(Path(tmp), args.recipients, args.bad_rows, args.cleaned)
        database = given or f"sqlite:///{home / 'var' / 'bench.db'}"
        port = free_port()
        fake = start_fake(port, args.latency_ms)
        try:
            env = environment(port, database, args.concurrency)
            rss_before = peak_rss_mb()
            if args.signups:
                sign_up(home, args.recipients, 1)
            cold: list[tuple[float, float, float]] = []  # as the clock starts, after the draft
            first = send_once(home, env, at_start=lambda: cold.append(cpu_now(fake.pid)))
            first_cpu = [b - a for a, b in zip(cold[0], cpu_now(fake.pid), strict=True)]
            if args.signups:
                sign_up(home, args.recipients + 1, args.signups)
            requests.post(f"http://127.0.0.1:{port}/_fake/reset", timeout=10)
            started: list[tuple[float, float, float]] = []
            run = send_once(home, env, first.articles, frozen_first=args.frozen_first,
                            at_start=lambda: started.append(cpu_now(fake.pid)))
            cpu = [b - a for a, b in zip(started[0], cpu_now(fake.pid), strict=True)]
            rss = peak_rss_mb()
            # Taken before the fake server is stopped: only the helpers have ended so far.
            helper_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            received = requests.get(
                f"http://127.0.0.1:{port}/_fake/record?summary=1", timeout=30
            ).json()
            ceiling = 0.0 if args.no_extras else loopback_ceiling(
                port, args.recipients, args.concurrency
            )
            rate, html_bytes = (0.0, 0) if args.no_extras else merge_rate(
                home, env, args.merge_seconds
            )
            on_sqlite = database.startswith("sqlite")
            floor = ledger_floor(home, env, run) if on_sqlite and not args.no_extras else 0.0
        finally:
            fake.terminate()
            fake.wait(10)
    print(f"python speed           {python_speed():.1f} µs for sum(range(1000)) (machine speed)")
    print(f"recipients             {args.recipients:,} (bad rows: {args.bad_rows:g} %"
          f"{', cleaned out' if args.cleaned else ''})")
    if args.signups:
        print(f"sign-ups               1 before the first send, {args.signups:,} between the two")
    print(f"concurrency            {args.concurrency} (NEWSLETTER_CONCURRENCY)")
    print(f"provider latency       {args.latency_ms or 'none (loopback)'} ms per request")
    print(f"database               {database.split(':')[0]}")
    print(f"ledger                 {run.counts}")
    print(f"fake server received   {received}")
    print(f"first send             {first.elapsed:.2f} s (cold address-validation cache; CPU "
          f"{sum(first_cpu[:2]):.1f} s in the sender, its helpers and validation processes)")
    print(f"  cores kept busy      {busy_share(first_cpu, first.elapsed):.0%} of "
          f"{os.cpu_count() or 1} (that CPU and the fake server's {first_cpu[2]:.1f} s): the "
          "rest of the time, the parties waited on one another")
    print(
        f"send wall time         {run.elapsed:.2f} s "
        "(queued → every batch acknowledged and committed)"
    )
    if args.frozen_first:
        wall, cpu_s = run.frozen_before
        print("  the audience was frozen before the clock started: the sends alone")
        print(f"  that freeze, alone   {wall:.2f} s ({cpu_s:.2f} s of this process's CPU; "
              "the first issue's audience copied when the member files are unchanged, or only "
              "grew)")
    else:
        print(f"  of which freezing    {run.freeze:.2f} s (the audience read and written, or "
              "copied from the first issue when the member files are unchanged, or only grew)")
    sent = sum(run.counts.values())  # fewer than --recipients with --bad-rows
    print(f"send rate              {sent / run.elapsed:,.0f} recipients/s")
    print(f"second send CPU        {sum(cpu[:2]):.1f} s (sender and helpers)")
    shares = ", ".join(f"{n / args.recipients:.0%}" for n in run.by_helpers) or "none"
    print(f"helper processes       {len(run.by_helpers)} (their shares: {shares})")
    print(f"peak RSS               {rss:.0f} MB (before the send: {rss_before:.0f} MB)")
    if run.by_helpers:
        print(f"  each helper          {helper_rss:.0f} MB at most")
    print(
        f"CPU seconds            sender {cpu[0]:.1f}, helpers {cpu[1]:.1f}, fake server "
        f"{cpu[2]:.1f} (of {os.cpu_count() or 1} cores for {run.elapsed:.1f} s)"
    )
    if args.no_extras:
        return
    print(
        f"loopback ceiling       {ceiling:.2f} s for {max(1, args.recipients // 1000):,} pre-built "
        f"1,000-recipient POSTs ({args.recipients / ceiling:,.0f} recipients/s)"
    )
    print(
        f"local merge            {rate:,.0f} recipients/s on one core "
        f"({html_bytes // 1024} KB HTML)"
    )
    if floor:
        print(f"ledger rows alone      {floor:.2f} s of CPU: SQLite writing the same {sent:,} "
              "ledger rows again, as a freeze does but with no Python per row (its floor)")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
