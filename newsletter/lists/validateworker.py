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


#: Addresses asked about first: when the cache knows none of them, the chunk is taken as new.
SAMPLE = 500


def store(chunk: list[str], cache: AddressCache) -> int:
    """Validate the addresses of ``chunk`` the cache does not know; commit their verdicts.

    In a new file, asking the cache about each address costs a tenth of validating it, for
    nothing: when none of the chunk's first ``SAMPLE`` is known, the rest is validated without
    asking (an address known after all gets the same verdict again, and keeps its row)."""
    sample = cache.unknown(chunk[:SAMPLE])
    if len(sample) == len(set(chunk[:SAMPLE])):
        raws = list(dict.fromkeys(chunk))
    else:
        raws = sample + [raw for part in range(SAMPLE, len(chunk), SAMPLE)
                         for raw in cache.unknown(chunk[part:part + SAMPLE])]
    found = verdicts(raws)
    accepted = [(raw, v[0]) for raw, v in zip(raws, found, strict=True) if v[0] is not None]
    refused = [(raw, v[1]) for raw, v in zip(raws, found, strict=True) if v[1] is not None]
    cache.put_many(accepted, refused)
    cache.flush()  # before answering: the main process reads them back right after
    return len(found)


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
