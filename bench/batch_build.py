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

from send import environment, make_home, python_speed  # noqa: E402

from newsletter.bulkwork import fewer_collections  # noqa: E402
from newsletter.config import load_settings  # noqa: E402
from newsletter.delivery.base import HttpRequest  # noqa: E402
from newsletter.publisher import Publisher  # noqa: E402
from newsletter.render.greeting import greeting_name  # noqa: E402
from newsletter.store import Store, ledger  # noqa: E402
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        home = make_home(Path(folder), args.recipients)
        env = environment(9, f"sqlite:///{home / 'var' / 'bench.db'}", 2)  # nothing is sent
        settings = load_settings(home, environ=env)
        store = Store.open(settings.database_url)
        try:
            publisher = Publisher(settings, store)
            publisher.collect()
            (issue_id,) = publisher.draft("bench")
            publisher.queue(issue_id)
            prepared = publisher.start(issue_id)
            engine = publisher.engine()
            claimed = []
            while (batch := engine._claim(issue_id)) is not None:
                claimed.append(batch)
            provider, kept = engine.provider, engine.values._kept
            assert kept is not None
            base = publisher.base_url
            unsubscribe, preferences = unsubscribe_prefix(base), preferences_prefix(base)

            def today() -> int:
                built = 0
                for batch in claimed:  # as ``Engine._attempt`` does before a request goes out
                    outgoing = engine._outgoing(prepared, batch)
                    request = provider.build_request(prepared, outgoing)
                    built += len(outgoing.recipients)
                made.append(request)
                return built

            def least() -> int:
                built = 0
                for batch in claimed:
                    with store.engine.connect() as conn:
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

            made: list[HttpRequest] = []  # today's requests, the last of each round
            merged: list[bytes] = []  # the least way's variables, each batch's
            with fewer_collections():  # as a send runs
                today()  # the tokens signed and kept, as by the send before
                now, sent = best_ms_per_batch(today, len(claimed), args.repeat)
                floor, built = best_ms_per_batch(least, len(claimed), args.repeat)
        finally:
            store.close()
    if sent != built or orjson.loads(merged[-1]) != variables_of(made[-1]):
        raise SystemExit("the least way did not build what today's does")
    print(f"python speed           {python_speed():.1f} µs for sum(range(1000)) (machine speed)")
    print(f"batches                {len(claimed):,} of up to 1,000 recipients ({sent:,} in all)")
    print(f"today                  {now:.2f} ms of CPU a batch: rows read, values made, "
          "Mailgun's request built")
    print(f"the least              {floor:.2f} ms of CPU a batch: rows read, one dict per "
          "recipient, the JSON and the To field")
    print(f"what rework could save {now - floor:.2f} ms a batch "
          f"({(now - floor) / now:.0%}): {now - floor:.2f} s of CPU for a million recipients")


if __name__ == "__main__":
    main()
