"""One address validation process of ``prevalidate``: a chunk of addresses a line in (JSON),
until the end of its input. It validates those the address cache (named by its one argument)
does not know, stores their verdicts there itself in one transaction, and only then answers
with a line: how many it validated.

Storing here, not in the main process, spares that process (the one reading the file row by
row after the pool, the bottleneck of a first read) decoding and inserting a verdict per
address. A process killed mid-chunk leaves nothing of that chunk: its transaction is rolled
back, so every verdict in the cache is one email-validator gave."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .addresscache import AddressCache
from .prevalidate import verdicts


def serve(cache_file: Path) -> None:
    cache = AddressCache(cache_file)
    try:
        for line in sys.stdin:
            sys.stdout.write(f"{store(json.loads(line), cache)}\n")
            sys.stdout.flush()
    except BrokenPipeError:
        pass  # the reader has gone: the verdicts are stored all the same
    finally:
        cache.close()


def store(chunk: list[str], cache: AddressCache) -> int:
    """Validate the addresses of ``chunk`` the cache does not know; commit their verdicts."""
    raws = [raw for part in range(0, len(chunk), 500)
            for raw in cache.unknown(chunk[part:part + 500])]
    found = verdicts(raws)
    accepted = [(raw, v[0]) for raw, v in zip(raws, found, strict=True) if v[0] is not None]
    refused = [(raw, v[1]) for raw, v in zip(raws, found, strict=True) if v[1] is not None]
    cache.put_many(accepted, refused)
    cache.flush()  # before answering: the main process reads them back right after
    return len(found)


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
