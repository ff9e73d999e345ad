"""What building one 1,000-recipient Mailgun batch costs in Python, against the least it could.

    python bench/batch_build.py [--recipients 50000] [--repeat 5]

Freezes an issue to N synthetic recipients (as ``send.py`` makes them; nothing is sent),
then, on one core, times what a sender does for each batch before its request goes out:
its ledger rows read, each recipient's values made (tokens kept from the run before, the
greeting, the unsubscribe and preferences URLs) and Mailgun's request built. Beside it,
the least Python can do with the same rows and tokens: one dict per recipient, the
``recipient-variables`` JSON and the ``to`` field, nothing checked. The difference is what
any rework of the per-batch path could save. Figures only; the last batch's
``recipient-variables`` are checked to be the same both ways.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from send import environment, make_home, python_speed, queued_issue  # noqa: E402

from newsletter.bulkwork import fewer_collections  # noqa: E402
from newsletter.config import load_settings  # noqa: E402
from newsletter.delivery.base import HttpRequest, PreparedIssue  # noqa: E402
from newsletter.delivery.engine import Engine  # noqa: E402
from newsletter.publisher import Publisher  # noqa: E402
from newsletter.render.greeting import greeting_name  # noqa: E402
from newsletter.store import Store, ledger  # noqa: E402
from newsletter.store.ledger import ClaimedBatch  # noqa: E402
from newsletter.tokens import preferences_prefix, unsubscribe_prefix  # noqa: E402


def best_ms_per_batch(build: Callable[[], int], batches: int, repeat: int) -> tuple[float, int]:
    """The best of ``repeat`` rounds, in CPU milliseconds a batch; and what a round built."""
    times, built = [], 0
    for _ in range(repeat):
        started = time.process_time()
        built = build()
        times.append(time.process_time() - started)
    return min(times) / batches * 1000, built


def variables_of(request: HttpRequest) -> object:
    """The ``recipient-variables`` a Mailgun request carries, parsed."""
    parts = dict(request.files or [])
    return orjson.loads(parts["recipient-variables"][1])


def frozen_issue(home: Path) -> tuple[Publisher, PreparedIssue, Engine, list[ClaimedBatch]]:
    """The bench list's issue, started (its audience frozen), with every batch claimed by
    an engine that sends nothing."""
    env = environment(9, f"sqlite:///{home / 'var' / 'bench.db'}", 2)  # port 9: nothing sent
    settings = load_settings(home, environ=env)
    publisher = Publisher(settings, Store.open(settings.database_url))
    issue_id = queued_issue(publisher)
    prepared = publisher.start(issue_id)
    engine = publisher.engine()
    claimed = []
    while (batch := engine._claim(issue_id)) is not None:
        claimed.append(batch)
    return publisher, prepared, engine, claimed


def built_today(prepared: PreparedIssue, engine: Engine, claimed: list[ClaimedBatch],
                made: list[HttpRequest]) -> int:
    """Each batch as ``Engine._attempt`` makes it before its request goes out; the last
    request is kept in ``made``."""
    built = 0
    for batch in claimed:
        outgoing = engine._outgoing(prepared, batch)
        made.append(engine.provider.build_request(prepared, outgoing))
        built += len(outgoing.recipients)
    return built


def built_least(publisher: Publisher, engine: Engine, claimed: list[ClaimedBatch],
                merged: list[bytes]) -> int:
    """Each batch the least way: its rows and kept tokens read, a dict per recipient, the
    JSON (kept in ``merged``) and the To field."""
    kept, base = engine.values._kept, publisher.base_url
    assert kept is not None
    unsubscribe, preferences = unsubscribe_prefix(base), preferences_prefix(base)
    built = 0
    for batch in claimed:
        with publisher.store.engine.connect() as conn:
            rows = ledger.open_rows(conn, batch.id, with_fields=False)
        tokens = kept.batch("bench", batch.seq)
        variables = {}
        for rid, email, name, _, _ in rows:
            token = tokens[email.lower()]
            variables[email] = {
                "greeting_name": greeting_name(name),
                "unsubscribe_url": unsubscribe + token,
                "preferences_url": preferences + token,
                "nl_rid": str(rid),
            }
        merged.append(orjson.dumps(variables))
        ", ".join([f"{name} <{email}>" for _, email, name, _, _ in rows])
        built += len(variables)
    return built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    made: list[HttpRequest] = []  # today's requests
    merged: list[bytes] = []  # the least way's variables, each batch's
    with tempfile.TemporaryDirectory() as folder:
        publisher, prepared, engine, claimed = frozen_issue(make_home(Path(folder),
                                                                      args.recipients))
        try:
            with fewer_collections():  # as a send runs
                built_today(prepared, engine, claimed, [])  # tokens kept, as by a send before
                now, sent = best_ms_per_batch(
                    lambda: built_today(prepared, engine, claimed, made), len(claimed),
                    args.repeat)
                floor, built = best_ms_per_batch(
                    lambda: built_least(publisher, engine, claimed, merged), len(claimed),
                    args.repeat)
        finally:
            publisher.store.close()
    if sent != built or orjson.loads(merged[-1]) != variables_of(made[-1]):
        raise SystemExit("the least way did not build what today's does")
    report(len(claimed), sent, now, floor)


def report(batches: int, recipients: int, now: float, floor: float) -> None:
    print(f"python speed           {python_speed():.1f} µs for sum(range(1000)) (machine speed)")
    print(f"batches                {batches:,} of up to 1,000 recipients ({recipients:,} in all)")
    print(f"today                  {now:.2f} ms of CPU a batch: rows read, values made, "
          "Mailgun's request built")
    print(f"the least              {floor:.2f} ms of CPU a batch: rows read, one dict per "
          "recipient, the JSON and the To field")
    print(f"what rework could save {now - floor:.2f} ms a batch "
          f"({(now - floor) / now:.0%}): {now - floor:.2f} s of CPU for a million recipients")


if __name__ == "__main__":
    main()
