"""The public archive under load: an issue page, a list's page and its Atom feed, each asked
for by 20 kept-alive clients at once through ``newsletter serve --workers 2``; print figures.

    python bench/archive.py
    python bench/archive.py --issues 1000 --duration 10
    python bench/archive.py --database postgresql+psycopg://127.0.0.1:5432/test --json

The bench copies the example publication, collects its articles, drafts and renders one
issue of the list ``weekly`` (the real templates: a web edition of some tens of kilobytes),
marks it sent, and adds ``--issues`` more sent issues with the same web edition, a day apart.
Each URL is then asked for ``--duration`` seconds by a client process (``httpload.py``:
asyncio over h11, which costs the server's cores little) after a few warm-up requests a
worker, so the pages measured are the ones each worker keeps; the last row asks for the
issue page with the ETag it has, and is answered 304 without a body. The issue's target:
an archive issue page at 1,000 requests a second or more.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import insert, update

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpload
from desk import served, serving_cpu
from send import database_for_bench, example_home, python_speed

from newsletter.config import load_settings
from newsletter.models import IssueState
from newsletter.publisher import Publisher
from newsletter.store import Store
from newsletter.store.archive import published_issues
from newsletter.store.tables import issues

LIST_ID = "weekly"
CLIENTS = 20
TARGET_PER_SECOND = 1000.0




def seed(home: Path, env: dict[str, str], count: int) -> list[int]:
    """One rendered issue and ``count`` more with its web edition, all sent; their ids,
    oldest first."""
    settings = load_settings(home, environ=env)
    store = Store.open(settings.database_url)
    try:
        publisher = Publisher(settings, store)
        publisher.collect()
        (first,) = publisher.draft(LIST_ID)
        web_html = publisher.render(first).web_html
        start = datetime(2020, 1, 6, 8, tzinfo=UTC)
        with store.engine.begin() as conn:
            conn.execute(update(issues).where(issues.c.id == first).values(
                state=str(IssueState.SENT), started_at=start, finished_at=start))
            rows = [{"list_id": LIST_ID, "kind": "digest", "state": str(IssueState.SENT),
                     "subject": f"The week, number {n}", "preheader": f"Issue {n} in brief.",
                     "created_at": start, "updated_at": start, "web_html": web_html,
                     "started_at": start + timedelta(days=n)} for n in range(1, count + 1)]
            if rows:
                conn.execute(insert(issues), rows)
        with store.engine.connect() as conn:
            return [issue.id for issue in reversed(published_issues(conn, LIST_ID))]
    finally:
        store.close()


def probes(ids: list[int]) -> list[tuple[str, str]]:
    middle = ids[len(ids) // 2]
    return [
        ("issue page", f"/archive/{LIST_ID}/{middle}"),
        ("list page", f"/archive/{LIST_ID}/"),
        ("Atom feed", f"/archive/{LIST_ID}/feed.atom"),
        ("issue page, If-None-Match", f"/archive/{LIST_ID}/{middle}"),
    ]


def warm(base: str, path: str, workers: int) -> requests.Response:
    """A few requests on new connections, which any worker may take: each makes its page."""
    with requests.Session() as session:
        session.trust_env = False
        for _ in range(3 * workers):
            answer = session.get(base + path, headers={"Connection": "close"}, timeout=60)
    return answer


def measure(label: str, base: str, path: str, seconds: float, server: tuple[int, int],
            conditional: bool) -> dict[str, Any]:
    server_pid, workers = server
    first = warm(base, path, workers)
    headers = {"If-None-Match": first.headers["ETag"]} if conditional else {}
    before = serving_cpu(server_pid)
    proc = httpload.start({"base": base, "paths": [path], "headers": headers,
                           "clients": CLIENTS, "seconds": seconds, "every": 0})
    done = httpload.results(proc)
    found = httpload.figures(done["answers"][path], done["seconds"])
    return {"label": label, "path": path, "clients": CLIENTS, "bytes": len(first.content),
            **found, "server_cpu": serving_cpu(server_pid) - before,
            "client_cpu": done["cpu"], "seconds": done["seconds"]}


def run(args: argparse.Namespace, home: Path, database: str) -> dict[str, Any]:
    env = {"NEWSLETTER_DATABASE_URL": database, "NEWSLETTER_SECRET_KEY": "bench-signing-key",
           "NEWSLETTER_LOOKBACK_DAYS": "36500"}
    started = time.perf_counter()
    ids = seed(home, env, args.issues)
    result: dict[str, Any] = {"database": database.split(":")[0], "issues": len(ids),
                              "seed_seconds": time.perf_counter() - started,
                              "duration": args.duration, "workers": args.workers}
    with served(home, env, args.workers) as (base, server_pid):
        result["probes"] = [
            measure(label, base, path, args.duration, (server_pid, args.workers),
                    conditional="If-None-Match" in label)
            for label, path in probes(ids)]
    result["python_speed"] = python_speed()
    return result


def print_report(result: dict[str, Any]) -> None:
    print(f"python speed     {result['python_speed']:.1f} µs for sum(range(1000))")
    print(f"database         {result['database']}: {result['issues']:,} sent issues of one "
          f"list, seeded in {result['seed_seconds']:.1f} s")
    print(f"served by        newsletter serve --workers {result['workers']}; each URL "
          f"{result['duration']:g} s, {CLIENTS} clients, times in ms")
    print(f"\n{'':<28}{'bytes':>8}{'requests':>10}{'p50':>7}{'p95':>7}{'p99':>7}{'req/s':>8}"
          "  CPU: server / client")
    for row in result["probes"]:
        server, client = row["server_cpu"] / row["seconds"], row["client_cpu"] / row["seconds"]
        cpu = f"{server:>4.0%} / {client:.0%}"
        bad = {s: n for s, n in row["statuses"].items() if s not in ("200", "304")}
        print(f"{row['label']:<28}{row['bytes']:>8,}{row['requests']:>10,}{row['p50_ms']:>7.1f}"
              f"{row['p95_ms']:>7.1f}{row['p99_ms']:>7.1f}{row['per_second']:>8.0f}  {cpu:>17}"
              f"{f'  (other answers: {bad})' if bad else ''}")
    issue = result["probes"][0]
    mark = "✓" if issue["per_second"] >= TARGET_PER_SECOND else "✗"
    print(f"\ntarget: an issue page at ≥ {TARGET_PER_SECOND:,.0f} req/s: "
          f"{issue['per_second']:,.0f} {mark}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issues", type=int, default=200, help="sent issues besides the first")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per URL")
    parser.add_argument("--database", default="", help="SQLAlchemy URL (default: SQLite file)")
    parser.add_argument("--workers", type=int, default=2,
                        help="newsletter serve --workers: one a core of the machine")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, database_for_bench(args.database) as given:
        home = example_home(Path(tmp))
        result = run(args, home, given or f"sqlite:///{Path(tmp) / 'archive.db'}")
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print_report(result)


if __name__ == "__main__":
    main()
