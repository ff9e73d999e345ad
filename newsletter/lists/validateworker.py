"""One address validation process of ``prevalidate``: a chunk of a file's addresses a line
in (JSON, one per data record in file order, "" for a record with no address to ask about),
until the end of its input. It validates those the address cache (named by its one argument)
does not know and answers with a line (JSON): how many it validated, and the records whose
address is not accepted as written, each with its verdict (``[place in the chunk, normalised
or null, reason or null]``). It stores the verdicts in the cache itself, in transactions of
many chunks, the last one as it exits (``prevalidate`` waits for that); a chunk is
answered before its verdicts are handed to the cache, so the read goes on while a
transaction commits.

Storing here, not in the main process, spares that process (the one reading the file row by
row, the bottleneck of a first read) decoding and inserting a verdict per address; answering
with the exceptions alone lets it take every other record as accepted without asking the
cache, so it never reads a verdict back. Committing a transaction per chunk cost more than
validating: a real list's addresses come in no order, so each chunk's 5,000 land all over
the cache's index, and every commit rewrote pages across it (a million new addresses: 30 s
of CPU in these processes, about 16 s committing every 100,000 with each transaction's rows
sorted; ``bench/first_read.py``). A process killed mid-way loses the verdicts it had not
committed, and nothing else: each transaction is whole, so every verdict in the cache is one
email-validator gave, and a verdict missing is validated again by the next read."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .addresscache import COMMIT_EVERY, AddressCache
from .prevalidate import Irregular, Verdict, verdicts


def serve(cache_file: Path, commit_every: int = COMMIT_EVERY) -> None:
    cache = AddressCache(cache_file, commit_every)
    try:
        for line in sys.stdin:
            answer, new = judge(json.loads(line), cache)
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
            keep(cache, new)  # after the answer: the read goes on while a transaction commits
    except BrokenPipeError:
        pass  # the reader has gone: the verdicts are stored all the same
    finally:
        cache.close()


#: Addresses asked about first: when the cache knows none of them, the chunk is taken as new.
SAMPLE = 500


#: How many of a chunk's addresses were validated, and its records not accepted as written.
Answer = tuple[int, list[Irregular]]


def store(chunk: list[str], cache: AddressCache) -> Answer:
    """``judge`` the chunk and hand the cache the new verdicts (stored with its next
    transaction); the answer."""
    answer, new = judge(chunk, cache)
    keep(cache, new)
    return answer


def judge(chunk: list[str], cache: AddressCache) -> tuple[Answer, dict[str, Verdict]]:
    """Validate the addresses of ``chunk`` the cache does not know: the answer, and those
    new verdicts.

    In a new file, asking the cache about each address costs a tenth of validating it, for
    nothing: when none of the chunk's first ``SAMPLE`` is known, the rest is validated without
    asking (an address known after all gets the same verdict again, and keeps its row)."""
    raws = [raw for raw in dict.fromkeys(chunk) if raw]
    known = cache.verdicts(raws[:SAMPLE])
    if known:
        for part in range(SAMPLE, len(raws), SAMPLE):
            known.update(cache.verdicts(raws[part:part + SAMPLE]))
    new = [raw for raw in raws if raw not in known]
    found = dict(zip(new, verdicts(new), strict=True))
    known.update(found)
    irregular = [(at, *_verdict(raw, known)) for at, raw in enumerate(chunk)
                 if not raw or known[raw] != (raw, None)]
    return (len(new), irregular), found


def keep(cache: AddressCache, found: dict[str, Verdict]) -> None:
    cache.put_many([(raw, form) for raw, (form, _) in found.items() if form is not None],
                   [(raw, why) for raw, (_, why) in found.items() if why is not None])


def _verdict(raw: str, known: dict[str, Verdict]) -> Verdict:
    return known[raw] if raw else (None, None)


if __name__ == "__main__":
    # A second argument, verdicts a transaction, lets the tests see one commit and the next.
    serve(Path(sys.argv[1]), *(int(arg) for arg in sys.argv[2:3]))
