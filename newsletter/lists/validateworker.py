"""One address validation process of ``prevalidate``: a chunk of a file's addresses a line
in (JSON, one per data record in file order, "" for a record with no address to ask about),
until the end of its input. It validates those the address cache (named by its one argument)
does not know, stores their verdicts there itself in one transaction, and only then answers
with a line (JSON): how many it validated, and the records whose address is not accepted as
written, each with its verdict (``[place in the chunk, normalised or null, reason or null]``).

Storing here, not in the main process, spares that process (the one reading the file row by
row, the bottleneck of a first read) decoding and inserting a verdict per address; answering
with the exceptions alone lets it take every other record as accepted without asking the
cache. A process killed mid-chunk leaves nothing of that chunk: its transaction is rolled
back, so every verdict in the cache is one email-validator gave."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .addresscache import AddressCache
from .prevalidate import Irregular, Verdict, verdicts


def serve(cache_file: Path) -> None:
    cache = AddressCache(cache_file)
    try:
        for line in sys.stdin:
            sys.stdout.write(json.dumps(store(json.loads(line), cache)) + "\n")
            sys.stdout.flush()
    except BrokenPipeError:
        pass  # the reader has gone: the verdicts are stored all the same
    finally:
        cache.close()


#: Addresses asked about first: when the cache knows none of them, the chunk is taken as new.
SAMPLE = 500


def store(chunk: list[str], cache: AddressCache) -> tuple[int, list[Irregular]]:
    """Validate the addresses of ``chunk`` the cache does not know and commit their verdicts;
    how many were validated, and the chunk's records not accepted as written.

    In a new file, asking the cache about each address costs a tenth of validating it, for
    nothing: when none of the chunk's first ``SAMPLE`` is known, the rest is validated without
    asking (an address known after all gets the same verdict again, and keeps its row)."""
    raws = [raw for raw in dict.fromkeys(chunk) if raw]
    known = cache.verdicts(raws[:SAMPLE])
    if known:
        for part in range(SAMPLE, len(raws), SAMPLE):
            known.update(cache.verdicts(raws[part:part + SAMPLE]))
    new = [raw for raw in raws if raw not in known]
    found = verdicts(new)
    cache.put_many(
        [(raw, v[0]) for raw, v in zip(new, found, strict=True) if v[0] is not None],
        [(raw, v[1]) for raw, v in zip(new, found, strict=True) if v[1] is not None],
    )
    cache.flush()  # before answering: the main process may read them back right after
    known.update(zip(new, found, strict=True))
    return len(new), [(at, *_verdict(raw, known)) for at, raw in enumerate(chunk)
                      if not raw or known[raw] != (raw, None)]


def _verdict(raw: str, known: dict[str, Verdict]) -> Verdict:
    return known[raw] if raw else (None, None)


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
