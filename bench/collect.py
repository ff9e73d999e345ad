"""Collect N local feeds twice (a fresh database, then every answer a 304); rss2email alike.

    python bench/collect.py --feeds 200
    python bench/collect.py --feeds 200 --latency-ms 100 --rss2email /path/to/r2e-venv/bin/r2e

The feeds (RSS of 5 to 50 items, 2 to 60 KB) are served from ``--hosts`` local servers on
127.0.0.1, each on its own port, as a publication's feeds come from many sites; every
answer carries an ETag and a Last-Modified, so the second pass is all 304s.
``--latency-ms`` holds each answer that long, as a server across the internet does.

``newsletter collect`` runs as a process (imports included) on a fresh SQLite database,
twice, its modules compiled to bytecode beforehand as an installed package's are; then
an all-304 pass as the daemon (``newsletter run``) runs it (the scheduler's collection job,
timed the second time it runs in one process: imports made, store open), and a process that only
imports what ``collect`` needs, the floor of a pass run as a command.
rss2email, the reference, runs when ``--rss2email`` names its ``r2e`` command, installed
apart from this project:

    python3 -m venv r2e-venv && r2e-venv/bin/pip install rss2email

It runs ``r2e run --no-send`` twice on a fresh data file: it fetches and remembers every
entry but mails nothing. Prints the python speed, the load average, each pass's time and
CPU (the process's user and system time), and the ratios.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parent.parent
WORDS = [
    *("harbour", "council", "ferry", "timetable", "lighthouse", "volunteers", "regatta"),
    *("storm", "tide", "quay", "market", "library", "school", "bridge", "repairs"),
    *("festival", "fishing", "boats", "weather", "warning"),
]


def python_speed() -> float:
    """Microseconds for a fixed piece of pure Python (best of 20), as the other benches."""
    best = min(timeit.repeat("sum(range(1000))", number=2000, repeat=20))
    return best / 2000 * 1e6


def feed_document(number: int) -> bytes:
    """Feed ``number``: 5 to 50 items with 1 to 12 paragraphs each, dated over the last days."""
    items = 5 + (number * 7) % 46
    now = datetime.now(UTC)
    entries = []
    for item in range(items):
        words = " ".join(WORDS[(number + item + k) % len(WORDS)] for k in range(40))
        paragraph = f"&lt;p&gt;{words}.&lt;/p&gt;"
        paragraphs = paragraph * (1 + (number + item) % 12)
        published = format_datetime(now - timedelta(hours=3 * item + number % 5))
        entries.append(
            f"<item><title>Story {item} of feed {number}</title>"
            f"<link>https://site{number}.example.org/story/{item}</link>"
            f"<guid>https://site{number}.example.org/story/{item}</guid>"
            f"<pubDate>{published}</pubDate><description>{paragraphs}</description></item>"
        )
    channel = (
        f"<channel><title>Site {number}</title><link>https://site{number}.example.org/</link>"
        f"<description>Feed {number}</description>{''.join(entries)}</channel>"
    )
    return f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0">{channel}</rss>'.encode()


class FeedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive for clients that reuse connections
    disable_nagle_algorithm = True
    server: FeedHost

    def do_GET(self) -> None:
        host = self.server
        if host.latency:
            time.sleep(host.latency)
        document = host.documents.get(self.path)
        if document is None:
            self._answer(404, b"")
            return
        etag, modified = f'"{hash(document) & 0xFFFFFFFF:x}"', host.modified
        asked_tag, asked_date = self.headers.get("If-None-Match"), self.headers.get(
            "If-Modified-Since"
        )
        if asked_tag == etag or (asked_tag is None and asked_date == modified):
            self._answer(304, b"", etag, modified)
        else:
            self._answer(200, document, etag, modified)

    def _answer(self, status: int, body: bytes, etag: str = "", modified: str = "") -> None:
        self.send_response(status)
        if etag:
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", modified)
        if status == 200:
            self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


class FeedHost(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, latency: float) -> None:
        super().__init__(("127.0.0.1", 0), FeedHandler)
        self.latency = latency
        self.documents: dict[str, bytes] = {}
        self.modified = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def feed_hosts(feeds: int, hosts: int, latency: float) -> Iterator[list[str]]:
    """Serve the feeds round-robin over ``hosts`` servers; yields the feeds' URLs."""
    servers = [FeedHost(latency) for _ in range(min(hosts, feeds))]
    urls = []
    for number in range(feeds):
        server = servers[number % len(servers)]
        server.documents[f"/feed{number}.xml"] = feed_document(number)
        urls.append(f"{server.base}/feed{number}.xml")
    threads = [threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    try:
        yield urls
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def our_home(root: Path, urls: Sequence[str]) -> Path:
    home = root / "newsletter"
    (home / "subscribers").mkdir(parents=True)
    shutil.copytree(REPO / "templates", home / "templates")
    sources = "".join(
        f'[sources.feed{n}]\ntype = "feed"\nurl = "{url}"\nallow_private_network = true\n\n'
        for n, url in enumerate(urls)
    )
    names = ", ".join(f'"feed{n}"' for n in range(len(urls)))
    (home / "subscribers" / "publication.toml").write_text(
        '[publication]\nname = "Bench"\nbase_url = "https://bench.example.org"\n'
        'from_email = "editor@bench.example.org"\npostal_address = "1 Test Street"\n\n'
        f'{sources}[lists.bench]\ntitle = "Bench"\nmembers = ["bench.csv"]\n'
        f'sources = [{names}]\ncadence = "digest"\napproval = "editor"\n'
    )
    (home / "subscribers" / "bench.csv").write_text("email,name\nreader@bench.example.org,R\n")
    return home


def our_env(home: Path, concurrency: int) -> dict[str, str]:
    """Our collect's environment: the bench's database, and bytecode beside the sources (the
    ``__pycache__`` folders ``compile_ours`` fills), as an installed package has it. Without
    it, a checkout run with PYTHONDONTWRITEBYTECODE set would compile every module of ours
    on every start, a cost rss2email, installed by pip, never pays. (Not a bytecode folder of
    the bench's own, ``PYTHONPYCACHEPREFIX``: Python then looks for every module's bytecode
    there, the standard library's and the dependencies' too, and the first pass compiled
    them all, about 1.4 s of CPU that neither an installed program nor rss2email pays.)"""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "NEWSLETTER_DATABASE_URL": f"sqlite:///{home / 'bench.db'}",
        "NEWSLETTER_COLLECT_CONCURRENCY": str(concurrency),
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPYCACHEPREFIX", None)
    return env


def compile_ours(env: dict[str, str]) -> None:
    command = [sys.executable, "-m", "compileall", "-q", str(REPO / "newsletter")]
    subprocess.run(command, env=env, check=True, capture_output=True)


def run_ours(env: dict[str, str], home: Path) -> Pass:
    command = [sys.executable, "-m", "newsletter", "--home", str(home), "collect"]
    # From the publication's folder: -m looks in the current folder first, which would run
    # whatever checkout the bench was started from instead of REPO's.
    return timed(command, env, cwd=home)


#: A pass as ``newsletter run`` (the daemon) runs it: its scheduler's collection job, in a process
#: that has run it once already (imports made, the store open), timed on the second run.
DAEMON_PASS = """
import logging, resource, sys, time
from newsletter.config import load_settings
from newsletter.schedule.jobs import Runtime, collect_job, installed
from newsletter.store import Store

def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

failed = []
errors = logging.Handler(logging.ERROR)
errors.emit = lambda record: failed.append(record.getMessage())
logging.getLogger().addHandler(errors)
settings = load_settings(sys.argv[1])
with installed(Runtime(settings, Store.open(settings.database_url))):
    collect_job(sys.argv[1])
    cpu_before, started = cpu(), time.perf_counter()
    collect_job(sys.argv[1])
    print(time.perf_counter() - started, cpu() - cpu_before)
if failed:  # the job logs what went wrong and carries on, as the daemon must
    sys.exit("the collection job failed: " + "; ".join(failed))
"""
#: What ``newsletter collect`` imports before it fetches anything, timed as a process alone.
IMPORTS_ONLY = "import newsletter.cli.collect, newsletter.store.db, newsletter.sources.lanes"


def run_daemon_pass(env: dict[str, str], home: Path) -> Pass:
    command = [sys.executable, "-c", DAEMON_PASS, str(home)]
    done = subprocess.run(command, env=env, cwd=home, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise SystemExit(f"the daemon's pass failed:\n{done.stderr[-2000:]}")
    seconds, cpu = done.stdout.split()[-2:]
    return Pass(float(seconds), float(cpu))


def run_imports(env: dict[str, str], home: Path) -> Pass:
    return timed([sys.executable, "-c", IMPORTS_ONLY], env, cwd=home)


def r2e_files(root: Path, urls: Sequence[str]) -> tuple[Path, Path]:
    config, data = root / "r2e.cfg", root / "r2e.json"
    feeds = "".join(f"[feed.feed{n}]\nurl = {url}\n\n" for n, url in enumerate(urls))
    config.write_text(
        "[DEFAULT]\nto = reader@bench.example.org\nfrom = bench@bench.example.org\n"
        "force-from = False\ndate-header = False\n\n" + feeds
    )
    return config, data


def run_r2e(r2e: str, config: Path, data: Path) -> Pass:
    return timed([r2e, "-c", str(config), "-d", str(data), "run", "--no-send"], dict(os.environ))


class Pass(NamedTuple):
    """One pass: its time, and the CPU its process used (user and system), which another
    program loading the machine changes less than the time."""

    seconds: float
    cpu: float


def timed(command: Sequence[str], env: dict[str, str], cwd: Path | None = None) -> Pass:
    cpu_before = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-2000:]
        raise SystemExit(f"{command[0]} failed ({done.returncode}):\n{tail}")
    return Pass(elapsed, _children_cpu() - cpu_before)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--hosts", type=int, default=50, help="local servers the feeds share")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every answer")
    parser.add_argument("--concurrency", type=int, default=16, help="our collect's hosts at once")
    parser.add_argument("--rss2email", default="", metavar="R2E", help="rss2email's r2e command")
    args = parser.parse_args()
    times: dict[str, list[Pass]] = {}
    with tempfile.TemporaryDirectory() as tmp, feed_hosts(
        args.feeds, args.hosts, args.latency_ms / 1000
    ) as urls:
        root = Path(tmp)
        home = our_home(root, urls)
        env = our_env(home, args.concurrency)
        compile_ours(env)
        times["newsletter"] = [run_ours(env, home) for _ in range(2)]
        daemon, imports = run_daemon_pass(env, home), run_imports(env, home)
        if args.rss2email:
            config, data = r2e_files(root, urls)
            times["rss2email"] = [run_r2e(args.rss2email, config, data) for _ in range(2)]
    print(f"python speed           {python_speed():.1f} µs for sum(range(1000)) (machine speed)")
    print(
        f"feeds                  {args.feeds} on {min(args.hosts, args.feeds)} local hosts, "
        f"{args.latency_ms:g} ms added per answer"
    )
    print("load average           {:.2f} {:.2f} {:.2f} (1, 5, 15 min)".format(*os.getloadavg()))
    for name, (first, second) in times.items():
        print(
            f"{name:<22} first pass {first.seconds:.2f} s (CPU {first.cpu:.2f} s), "
            f"second (all 304) {second.seconds:.2f} s (CPU {second.cpu:.2f} s)"
        )
    print(
        f"newsletter run daemon  a pass in the running daemon (all 304) {daemon.seconds:.2f} s "
        f"(CPU {daemon.cpu:.2f} s); a process only importing what collect needs "
        f"{imports.seconds:.2f} s (CPU {imports.cpu:.2f} s)"
    )
    if "rss2email" in times:
        ours, theirs = times["newsletter"], times["rss2email"]
        print(
            f"daemon pass / rss2email's second pass {daemon.seconds / theirs[1].seconds:.2f} "
            f"times; CPU {daemon.cpu / theirs[1].cpu:.2f}"
        )
        print(
            f"newsletter / rss2email first {ours[0].seconds / theirs[0].seconds:.2f} times, "
            f"second {ours[1].seconds / theirs[1].seconds:.2f} times (below 1: we are faster); "
            f"CPU {ours[0].cpu / theirs[0].cpu:.2f}, {ours[1].cpu / theirs[1].cpu:.2f}"
        )


if __name__ == "__main__":
    main()
