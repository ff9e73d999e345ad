"""Public sign-ups through ``newsletter serve``: sign-ups a second and their latency, each one
a confirmation queued and recorded; print figures.

    python bench/signup.py                        # SQLite, two workers, 20 clients, 10 s
    python bench/signup.py --every 0.06           # the same clients, paced: about 220 a second
    python bench/signup.py --workers 1 --clients 10 --duration 20
    python bench/signup.py --database postgresql+psycopg://postgres@127.0.0.1:5432/test

The bench copies the example publication (its weekly list takes sign-ups) to a temporary
folder and serves it with ``newsletter serve --workers N`` on 127.0.0.1, the outbox provider
writing each confirmation to a file. A client process (``httpload``: asyncio over h11)
keeps ``--clients`` connections busy posting the form, each post a new address from a new
client address (``X-Forwarded-For``, which the server believes from 127.0.0.1 as behind its
reverse proxy), so neither limit applies, with one ``started`` stamp taken from the form page
``NEWSLETTER_SIGNUP_MIN_SECONDS`` before. Then it waits for the servers' senders to send
every confirmation queued, and checks that each accepted sign-up has exactly one, recorded
``sent``. The targets (≥ 200 sign-ups/s, p99 ≤ 150 ms) are printed beside the figures.

Without ``--every`` every client posts again as soon as it is answered: the most the server
takes, and the latency at that rate (20 clients waiting on each other). With ``--every S``
each client waits S seconds after an answer, which offers a steady rate, the way readers
arrive: the p99 at a rate the server sustains.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpload
from desk import served, serving_cpu
from send import database_for_bench, example_home

from newsletter.config import load_settings
from newsletter.store import Store
from newsletter.store import outbox as outbox_store
from newsletter.store.tables import mail_outbox, signup_requests

TARGET_PER_SECOND = 200.0
TARGET_P99_MS = 150.0
LIST = "weekly"
MIN_SECONDS = 1




def stamp(base: str) -> str:
    page = requests.get(f"{base}/subscribe/{LIST}", timeout=30)
    found = re.search(r'name="started" value="([^"]+)"', page.text)
    if page.status_code != 200 or not found:
        raise SystemExit(f"no sign-up form at {base}/subscribe/{LIST}: {page.status_code}")
    return found.group(1)


def load(
    base: str, started: str, clients: int, seconds: float, first: int, every: float = 0.0
) -> dict[str, Any]:
    spec = {
        "base": base, "paths": [f"/subscribe/{LIST}"], "clients": clients,
        "seconds": seconds, "every": every, "first": first,
        "headers": {"X-Forwarded-For": "{ip}"},
        "form": f"email=reader{{n}}%40bench.example.org&name=Reader+{{n}}&website="
                f"&started={quote(started, safe='')}",
    }
    return httpload.results(httpload.start(spec))


def drained(store: Store, deadline: float) -> float:
    """Seconds until no confirmation waits to be sent (or the deadline passes)."""
    started = time.monotonic()
    while time.monotonic() < deadline:
        with store.engine.connect() as conn:
            counts = outbox_store.counts(conn)
        if not counts.get("pending") and not counts.get("sending"):
            break
        time.sleep(0.2)
    return time.monotonic() - started


def recorded(store: Store) -> dict[str, int]:
    """The sign-up requests made, the confirmations in each state, and the most any one
    address was sent (1: none twice)."""
    from sqlalchemy import func, select

    per_address = (select(func.count().label("n")).select_from(mail_outbox)
                   .group_by(mail_outbox.c.to_email).subquery())
    with store.engine.connect() as conn:
        by_status = outbox_store.counts(conn)
        made = conn.execute(select(func.count()).select_from(signup_requests)).scalar()
        most = conn.execute(select(func.max(per_address.c.n))).scalar()
    return {"signup_requests": int(made or 0), "most_to_one_address": int(most or 0),
            **{f"messages_{k}": v for k, v in by_status.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="", help="SQLAlchemy URL (default: SQLite file)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=0.0,
                        help="seconds each client waits after an answer before its next "
                             "sign-up (0: none, the most the server takes; 0.08 with 20 "
                             "clients offers about 200 a second)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="signup-bench-") as tmp, \
            database_for_bench(args.database) as database:
        home = example_home(Path(tmp))
        env = {"NEWSLETTER_SIGNUP_MIN_SECONDS": str(MIN_SECONDS), "NEWSLETTER_LOG_LEVEL": "error"}
        if database:
            env["NEWSLETTER_DATABASE_URL"] = database
        settings = load_settings(home, environ=env)
        store = Store.open(settings.database_url)
        with served(home, env, args.workers) as (base, pid):
            started = stamp(base)
            time.sleep(MIN_SECONDS + 0.5)  # the stamp must be older than the quickest person
            load(base, started, 2, 2.0, first=10_000_000)  # every worker warm
            time.sleep(1)
            cpu = serving_cpu(pid)
            result = load(base, started, args.clients, args.duration, first=0,
                          every=args.every)
            server_cpu = serving_cpu(pid) - cpu
            drain = drained(store, time.monotonic() + 120)
            counts = recorded(store)
        store.close()
    answers = result["answers"][f"/subscribe/{LIST}"]
    report = {
        "workers": args.workers, "clients": args.clients, "every": args.every,
        "database": "postgresql" if database.startswith("postgresql") else "sqlite",
        **httpload.figures(answers, result["seconds"]),
        "server_cpu_seconds": round(server_cpu, 2), "client_cpu_seconds": round(result["cpu"], 2),
        "seconds_to_send_the_rest": round(drain, 2), **counts,
        "target": {"per_second": TARGET_PER_SECOND, "p99_ms": TARGET_P99_MS},
    }
    accepted = report["statuses"].get("200", 0)
    report["each_accepted_one_confirmation_sent"] = (
        report.get("messages_sent", 0) >= accepted and report["most_to_one_address"] == 1
    )
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for key, value in report.items():
        shown = f"{value:.1f}" if isinstance(value, float) else value
        print(f"{key:>38}: {shown}")


if __name__ == "__main__":
    main()
