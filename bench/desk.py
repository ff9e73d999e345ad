"""The desk under load: its pages' latency, an API's rate under 20 clients, and what watching
a large send costs it; print figures.

    python bench/desk.py --recipients 1000000 --issues 1000
    python bench/desk.py --recipients 100000 --database postgresql+psycopg://127.0.0.1:5432/test
    python bench/desk.py --duration 5 --send-runs 0 --json   # the pages only, as JSON

The bench seeds a database: ``--issues`` issues over four lists, in every state, most sent
with a small audience, and one issue of ``--recipients`` recipients sent last (mostly sent,
some failed, unknown and suppressed, with provider events). It serves the real app with
``newsletter serve --workers 2`` (``--workers``: one a core of the machine) on 127.0.0.1
and signs in through the sign-in form; the server's CPU is its workers' too. Each URL of
``PROBES`` is then asked for ``--duration`` seconds by a client process (asyncio over h11:
it costs the server's cores little) with one request at a time, or with 20 at once, and its
latencies printed beside the issue's targets. A URL answering 404 is
skipped with a note: a page or an API still being built.

Last, the same list of ``--recipients`` members is sent ``--send-runs`` times without a
watcher and as often with one that asks for the issue's page (and its progress) every
``--watch-every`` seconds, alternating, and the medians compared.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpload
from deskdata import PASSWORD, USER, make_desk_home, seed
from send import (
    REPO,
    cpu_seconds,
    database_for_bench,
    environment,
    free_port,
    python_speed,
    start_fake,
    validate_members,
)

from newsletter.config import load_settings
from newsletter.publisher import Publisher
from newsletter.store import Store
from newsletter.store import issues as issue_store


@dataclass(frozen=True, slots=True)
class Target:
    """What the issue asks of a URL; None: nothing."""

    p95_ms: float | None = None
    p99_ms: float | None = None
    per_second: float | None = None


@dataclass(frozen=True, slots=True)
class Probe:
    """One URL to measure. ``{issue}`` is the large issue; ``auth`` is how the client proves
    who it is: the desk's session cookie, an API token (Bearer), or nothing."""

    label: str
    path: str
    target: Target = Target()
    clients: int = 1
    auth: str = "session"


#: What is measured, in order. Adding a page is one line; one answering 404 is skipped.
PROBES = (
    Probe("issues page", "/desk/issues", Target(p95_ms=50)),
    Probe("issue page (the large one)", "/desk/issues/{issue}", Target(p95_ms=50)),
    Probe("recipient search", "/desk/issues/{issue}/recipients?q=reader4242&status=",
          Target(p95_ms=100)),
    Probe("failed recipients", "/desk/issues/{issue}/recipients?q=&status=failed",
          Target(p95_ms=100)),
    Probe("API: an issue, 20 clients", "/api/v1/issues/{issue}",
          Target(p99_ms=100, per_second=300), clients=20, auth="token"),
    Probe("issue page, 20 clients", "/desk/issues/{issue}", clients=20),
    Probe("health check, 20 clients", "/healthz", clients=20, auth="none"),
)
#: What a watcher asks for while an issue sends, each time.
WATCHED = ("/desk/issues/{issue}", "/desk/issues/{issue}/progress")
#: Sending with a watcher may add this much to a send's wall time, at most.
WATCH_OVERHEAD_PERCENT = 3.0

# -- the server ---------------------------------------------------------------------------
@contextmanager
def served(home: Path, env: dict[str, str], workers: int) -> Iterator[tuple[str, int]]:
    """``newsletter serve --workers N`` on a free port of 127.0.0.1; yields its URL and
    process id."""
    log = home / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "--home", str(home), "serve", "--port", "0",
             "--workers", str(workers)],
            env={**os.environ, **env, "PYTHONPATH": str(REPO)}, stdout=out, stderr=out)
    try:
        yield wait_for_address(server, log), server.pid
    finally:
        server.terminate()
        server.wait(60)  # a worker's outbox sender finishes the message in hand first


def serving_cpu(pid: int) -> float:
    """CPU seconds of the server and of its worker processes (the live ones)."""
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        found = []
    return cpu_seconds(pid) + sum(cpu_seconds(int(child)) for child in found)


def wait_for_address(server: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        found = re.search(r"Serving on (http://\S+)", log.read_text(errors="replace"))
        if found:
            return found.group(1)
        time.sleep(0.05)
    raise SystemExit(f"newsletter serve did not start:\n{log.read_text(errors='replace')}")


def sign_in(base: str) -> str:
    """Sign in through the form, as a browser does; the session cookie's value."""
    with requests.Session() as session:
        session.trust_env = False
        form = session.get(f"{base}/desk/signin", timeout=30).text
        token = re.search(r'name="csrf" value="([^"]+)"', form)
        if token is None:
            raise SystemExit("the sign-in page has no CSRF field")
        session.post(f"{base}/desk/signin", timeout=30, allow_redirects=False, data={
            "csrf": token.group(1), "name": USER, "password": PASSWORD, "next": ""})
        cookie = session.cookies.get("desk")
    if not cookie:
        raise SystemExit("signing in failed: no session cookie")
    return cookie


def api_token(home: Path, env: dict[str, str], given: str) -> str:
    """``--api-token``, else a new one from ``newsletter tokens create`` (its last word:
    the token); empty when there is no such command yet."""
    if given:
        return given
    made = subprocess.run(
        [sys.executable, "-m", "newsletter", "--home", str(home), "tokens", "create", "bench"],
        env={**os.environ, **env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        check=False)
    lines = made.stdout.split()
    return lines[-1] if made.returncode == 0 and lines else ""


# -- measuring ------------------------------------------------------------------------------
def headers_for(auth: str, cookie: str, token: str) -> dict[str, str]:
    if auth == "session":
        return {"Cookie": f"desk={cookie}"}
    if auth == "token":
        return {"Authorization": f"Bearer {token}"} if token else {}
    return {}


def verdicts(target: Target, found: dict[str, Any]) -> list[tuple[str, bool]]:
    """Each target of ``target`` as text, and whether ``found`` meets it."""
    checks = []
    if target.p95_ms is not None:
        checks.append((f"p95 ≤ {target.p95_ms:g} ms", found["p95_ms"] <= target.p95_ms))
    if target.p99_ms is not None:
        checks.append((f"p99 ≤ {target.p99_ms:g} ms", found["p99_ms"] <= target.p99_ms))
    if target.per_second is not None:
        checks.append((f"≥ {target.per_second:g} req/s", found["per_second"] >= target.per_second))
    return checks


def measure(probe: Probe, base: str, path: str, headers: dict[str, str], seconds: float,
            server: tuple[int, int]) -> dict[str, Any]:
    """One probe: a few warm-up requests for each worker of ``server`` (its process id and
    workers), then ``seconds`` of them, with the CPU each side used."""
    server_pid, workers = server
    with requests.Session() as warm:
        warm.trust_env = False
        for _ in range(3 * workers):  # each on a new connection, which any worker may take
            first = warm.get(base + path, headers={**headers, "Connection": "close"},
                             timeout=60, allow_redirects=False)
    if first.status_code != 200:
        return {"label": probe.label, "path": path, "skipped": f"answered {first.status_code}" +
                (" (not built yet?)" if first.status_code == 404 else "")}
    server_before = serving_cpu(server_pid)
    proc = httpload.start({"base": base, "paths": [path], "headers": headers,
                           "clients": probe.clients, "seconds": seconds, "every": 0})
    done = httpload.results(proc)
    found = httpload.figures(done["answers"][path], done["seconds"])
    return {"label": probe.label, "path": path, "clients": probe.clients, **found,
            "client_cpu": done["cpu"], "server_cpu": serving_cpu(server_pid) - server_before,
            "seconds": done["seconds"],
            "targets": [{"target": text, "met": met} for text, met in
                        verdicts(probe.target, found)]}


# -- watching a send ------------------------------------------------------------------------
def send_order(pairs: int) -> list[bool]:
    """Watched or not, run by run: ABBA ABBA …, so that a drift over the runs (a database that
    grows by a ledger a send) weighs on both sides alike."""
    return [(n % 2 == 1) != (n // 2 % 2 == 1) for n in range(2 * pairs)]


def one_send(home: Path, env: dict[str, str], watcher: dict[str, Any] | None,
             chosen: list[int] | None, server_pid: int) -> dict[str, Any]:
    """Draft, queue and send one issue of the list ``bench``, watched or not; the time runs
    from queued to the ledger committed, as ``bench/send.py`` times it."""
    settings = load_settings(home, environ=env)
    store = Store.open(settings.database_url)
    try:
        publisher = Publisher(settings, store)
        (issue_id,) = publisher.draft("bench", article_ids=chosen)
        publisher.queue(issue_id)
        watching = None
        if watcher is not None:
            paths = [p.format(issue=issue_id) for p in watcher["paths"]]
            watching = httpload.start({**watcher, "paths": paths})
        server_before = serving_cpu(server_pid)
        started = time.perf_counter()
        report = publisher.send_issue(issue_id)
        elapsed = time.perf_counter() - started
        server_cpu = serving_cpu(server_pid) - server_before
        with store.engine.connect() as conn:
            chosen = issue_store.article_ids(conn, issue_id)
    finally:
        store.close()
    polls = httpload.results(watching) if watching is not None else None
    return {"watched": watching is not None, "seconds": elapsed, "counts": report.counts,
            "server_cpu": server_cpu, "articles": chosen, "polls": polls}


def watched_sends(home: Path, env: dict[str, str], base: str, cookie: str,
                  args: argparse.Namespace, known_issue: int, server_pid: int) -> dict[str, Any]:
    validate_members(home, env)  # the list's first read, as a first send does: not timed
    headers = headers_for("session", cookie, "")
    watcher = {"base": base, "paths": watching_paths(base, headers, known_issue),
               "headers": headers, "clients": 1, "seconds": 0, "every": args.watch_every}
    runs: list[dict[str, Any]] = []
    chosen: list[int] | None = None
    for watched in send_order(args.send_runs):
        runs.append(one_send(home, env, watcher if watched else None, chosen, server_pid))
        chosen = runs[-1]["articles"]
    return summarise_sends(runs)


def watching_paths(base: str, headers: dict[str, str], issue_id: int) -> list[str]:
    """``WATCHED``, less the pages not built yet (asked for an issue that exists: a 404)."""
    kept = []
    with requests.Session() as probe:
        probe.trust_env = False
        for path in WATCHED:
            answer = probe.get(base + path.format(issue=issue_id), headers=headers, timeout=60,
                               allow_redirects=False)
            if answer.status_code != 404:
                kept.append(path)
    return kept


def summarise_sends(runs: list[dict[str, Any]]) -> dict[str, Any]:
    plain = [r["seconds"] for r in runs if not r["watched"]]
    watched = [r["seconds"] for r in runs if r["watched"]]
    overhead = (statistics.median(watched) / statistics.median(plain) - 1) * 100
    polls: dict[str, list[tuple[float, int]]] = {}
    for run in runs:
        for path, answers in (run["polls"] or {}).get("answers", {}).items():
            polls.setdefault(re.sub(r"/\d+", "/{issue}", path), []).extend(answers)
    return {
        "runs": [{k: r[k] for k in ("watched", "seconds", "counts", "server_cpu")} for r in runs],
        "median_plain": statistics.median(plain), "median_watched": statistics.median(watched),
        "overhead_percent": overhead, "met": overhead <= WATCH_OVERHEAD_PERCENT,
        "polls": {path: httpload.figures(answers, 0) for path, answers in polls.items()},
        "server_cpu_plain": sum(r["server_cpu"] for r in runs if not r["watched"]),
        "server_cpu_watched": sum(r["server_cpu"] for r in runs if r["watched"]),
    }


# -- the report -----------------------------------------------------------------------------
def print_report(result: dict[str, Any]) -> None:
    print(f"python speed           {result['python_speed']:.1f} µs for sum(range(1000))")
    print(f"database               {result['database']}: {result['issues']:,} issues and one "
          f"of {result['recipients']:,} recipients (issue {result['issue']}), seeded in "
          f"{result['seed_seconds']:.1f} s")
    print(f"served by              newsletter serve --workers {result['workers']}")
    print(f"each URL               {result['duration']:g} s, after 3 warm-up requests a worker; "
          "times in ms")
    print(f"\n{'':<32}{'clients':>8}{'requests':>9}{'p50':>8}{'p95':>8}{'p99':>8}{'req/s':>8}"
          "  CPU: server / client   target")
    for row in result["probes"]:
        if "skipped" in row:
            print(f"{row['label']:<32}  skipped: {row['path']} {row['skipped']}")
            continue
        server, own = row["server_cpu"] / row["seconds"], row["client_cpu"] / row["seconds"]
        cpu = f"{server:>4.0%} / {own:.0%}"
        marks = ", ".join(f"{t['target']} {'✓' if t['met'] else '✗'}" for t in row["targets"])
        bad = {s: n for s, n in row["statuses"].items() if s != "200"}
        print(f"{row['label']:<32}{row['clients']:>8}{row['requests']:>9,}{row['p50_ms']:>8.1f}"
              f"{row['p95_ms']:>8.1f}{row['p99_ms']:>8.1f}{row['per_second']:>8.0f}  "
              f"{cpu:>17}   {marks}{f'  (not 200: {bad})' if bad else ''}")
    if result.get("sends"):
        print_sends(result["sends"], result["recipients"], result["watch_every"])


def print_sends(sends: dict[str, Any], recipients: int, every: float) -> None:
    print(f"\nsending {recipients:,} recipients, watched or not (a watcher asks every "
          f"{every:g} s), in the order run:")
    for run in sends["runs"]:
        print(f"  {'watched' if run['watched'] else 'alone  '}  {run['seconds']:7.2f} s  "
              f"server CPU {run['server_cpu']:5.2f} s  ledger {run['counts']}")
    mark = "✓" if sends["met"] else "✗"
    print(f"  medians: alone {sends['median_plain']:.2f} s, watched {sends['median_watched']:.2f}"
          f" s: {sends['overhead_percent']:+.1f} %  (target ≤ {WATCH_OVERHEAD_PERCENT:g} % {mark})")
    watched = [r for r in sends["runs"] if r["watched"]]
    print(f"  the server's CPU while watched: {sends['server_cpu_watched']:.2f} s over "
          f"{sum(r['seconds'] for r in watched):.1f} s of sending, "
          f"{sends['server_cpu_watched'] / sum(r['seconds'] for r in watched):.1%} of a core")
    for path, found in sends["polls"].items():
        print(f"  the watcher's {path}: {found['requests']} requests, p50 {found['p50_ms']:.1f},"
              f" p95 {found['p95_ms']:.1f}, p99 {found['p99_ms']:.1f} ms, {found['statuses']}")
    missing = [p for p in WATCHED if p not in sends["polls"]]
    if missing:
        print(f"  not watched (404, not built yet?): {', '.join(missing)}")


# -- main -----------------------------------------------------------------------------------
def run(args: argparse.Namespace, home: Path, database: str) -> dict[str, Any]:
    port = free_port()
    fake = start_fake(port)
    try:
        env = {**environment(port, database, 2), "NEWSLETTER_SECRET_KEY": "bench-signing-key"}
        started = time.perf_counter()
        issue_id = seed(home, env, args.issues, args.recipients)
        result: dict[str, Any] = {
            "database": database.split(":")[0], "issues": args.issues, "issue": issue_id,
            "recipients": args.recipients, "seed_seconds": time.perf_counter() - started,
            "duration": args.duration, "watch_every": args.watch_every,
            "workers": args.workers}
        # Over plain http the session cookie is a plain one, which any client sends back.
        served_env = {**env, "NEWSLETTER_PUBLIC_URL": "http://127.0.0.1"}
        with served(home, served_env, args.workers) as (base, server_pid):
            cookie = sign_in(base)
            token = api_token(home, env, args.api_token)
            result["probes"] = [
                measure(p, base, p.path.format(issue=issue_id),
                        headers_for(p.auth, cookie, token), args.duration,
                        (server_pid, args.workers))
                for p in PROBES]
            if args.send_runs:
                result["sends"] = watched_sends(home, env, base, cookie, args, issue_id,
                                                server_pid)
    finally:
        fake.terminate()
        fake.wait(10)
    result["python_speed"] = python_speed()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=1_000_000,
                        help="the large issue's recipients, and the sent list's members")
    parser.add_argument("--issues", type=int, default=1_000, help="issues besides the large one")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per URL")
    parser.add_argument("--database", default="", help="SQLAlchemy URL (default: SQLite file)")
    parser.add_argument("--workers", type=int, default=2,
                        help="newsletter serve --workers: one a core of the machine")
    parser.add_argument("--send-runs", type=int, default=3,
                        help="sends without a watcher, and as many with one (0: none)")
    parser.add_argument("--watch-every", type=float, default=2.0, help="seconds between polls")
    parser.add_argument("--api-token", default="", help="a Bearer token for the API")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, database_for_bench(args.database) as given:
        home = make_desk_home(Path(tmp), args.recipients)
        result = run(args, home, given or f"sqlite:///{home / 'var' / 'bench.db'}")
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print_report(result)


if __name__ == "__main__":
    main()
