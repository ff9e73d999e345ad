"""The addresses of a member file not seen before, validated by a pool of processes.

email-validator costs about 40-100 µs an address in pure Python, so the first read of a new
1,000,000-member list spent most of a minute on one core. Before such a file is read row by
row, its addresses are handed in chunks to one process per core, which validates those the
address cache does not know yet and stores every verdict (accepted with the normalised form,
or refused with the reason) in the cache itself; the row-by-row read that follows then finds
each address there and reports exactly what it would have reported alone. A file with fewer
unknown addresses than ``POOL_FROM`` is left to that read: a pool takes longer to start than
they take.

The processes are fresh interpreters (``python -m newsletter.lists.validateworker``), as the
send's helper processes are: a forked child would inherit the parent's threads and database
connections, and ``multiprocessing``'s spawn re-runs the parent's main script, which a
script without an ``if __name__ == "__main__"`` guard cannot survive. Each takes one chunk
at a time (a JSON line on its standard input) and answers with a short line once its
verdicts are committed (how many it validated), so neither side ever waits on a full pipe.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ..errors import ConfigError, ListError
from ..processes import child_environment
from .address import normalise_address
from .addresscache import AddressCache
from .csvfile import clean_rows, first_header, iter_records

log = logging.getLogger(__name__)

#: Unknown addresses below which a file is validated in-process by its row-by-row read.
POOL_FROM = 20_000
CHUNK = 5_000  # addresses per task: large enough that pickling them is a small share
LOOKUP = 500  # addresses per query asking the cache which it knows

#: What each process runs: a module of its own, which the package does not import (running
#: one it had imported would make ``runpy`` warn).
WORKER_MODULE = "newsletter.lists.validateworker"

#: One address's verdict: (normalised or None, reason refused or None).
Verdict = tuple[str | None, str | None]


def verdicts(raws: list[str]) -> list[Verdict]:
    """What the row-by-row read would decide for each address (run in a pool process), in
    the same order."""
    out: list[Verdict] = []
    for raw in raws:
        try:
            out.append((normalise_address(raw), None))
        except ConfigError as exc:
            out.append((None, str(exc)))
    return out


def prevalidate(path: Path, cache: AddressCache, pool_from: int = POOL_FROM) -> int:
    """Validate the addresses of ``path`` that ``cache`` does not know, in a pool when there
    are at least ``pool_from`` of them; how many the pool validated (0: none, left to the
    caller's read). A file that cannot be read is left to that read to report.

    Only the first ``pool_from`` unknown addresses are sorted out here (to decide whether a
    pool is worth starting); the rest of the file goes to the processes as it is, and each
    asks the cache itself which of its chunk it must validate."""
    try:
        batches = _address_batches(path)
        first = _take_unknown(batches, cache, pool_from)
    except (OSError, ListError):
        return 0
    if len(first) < pool_from:
        return 0
    workers = [_start_worker(cache.path) for _ in range(max(2, len(os.sched_getaffinity(0))))]
    done = 0
    busy: list[tuple[subprocess.Popen[str], int]] = []  # each with the size of its chunk
    try:  # a worker that fails leaves the rest of the file to the row-by-row read
        for chunk in _chunked(first, batches):
            if len(busy) == len(workers):  # each has a chunk: take the oldest one's answer
                worker, sent = busy.pop(0)
                done += _answer(worker, sent)
            else:
                worker = workers[len(busy)]
            _send(worker, chunk)
            busy.append((worker, len(chunk)))
        for worker, sent in busy:
            done += _answer(worker, sent)
    except (OSError, ValueError) as exc:
        log.warning("validating %s over several processes stopped: %s", path, exc)
    finally:
        for worker in workers:
            _stop(worker)
    return done


def _start_worker(cache_file: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", WORKER_MODULE, str(cache_file)], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True, encoding="utf-8", env=child_environment(),
    )


def _send(worker: subprocess.Popen[str], chunk: list[str]) -> None:
    stdin: IO[str] | None = worker.stdin
    assert stdin is not None
    stdin.write(json.dumps(chunk) + "\n")
    stdin.flush()


def _answer(worker: subprocess.Popen[str], sent: int) -> int:
    """How many of the ``sent`` addresses last sent to ``worker`` it validated; their
    verdicts are in the cache (committed) by then."""
    assert worker.stdout is not None
    line = worker.stdout.readline()
    if not line:
        raise OSError(f"an address validation process ended (exit code {worker.wait()})")
    validated = int(line)
    if not 0 <= validated <= sent:
        raise ValueError(f"{validated} verdicts for {sent} addresses")
    return validated


def _stop(worker: subprocess.Popen[str]) -> None:
    if worker.stdin is not None:
        with contextlib.suppress(BrokenPipeError):
            worker.stdin.close()  # its end of input: it exits
    if worker.stdout is not None:
        worker.stdout.close()
    worker.wait()


def _address_batches(path: Path) -> Iterator[list[str]]:
    """The file's non-empty addresses, a few hundred at a time.

    Only a hint for the row-by-row read that follows (an address missed here is validated
    there), so the rows are split the lean way (``clean_rows``, a third of ``iter_records``'
    cost), and the scan ends where the file stops being well-formed CSV."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        header = first_header(iter_records(handle, path), path)
        at, width = header.email_index, len(header.columns)
        batch: list[str] = []
        with contextlib.suppress(csv.Error, UnicodeDecodeError):
            for fields in clean_rows(handle):  # from the line after the header
                if len(fields) == width and (address := fields[at].strip()):
                    batch.append(address)  # as the row-by-row read asks the cache about it
                    if len(batch) >= LOOKUP:
                        yield batch
                        batch = []
        if batch:
            yield batch


def _take_unknown(batches: Iterator[list[str]], cache: AddressCache, count: int) -> list[str]:
    """Addresses of ``batches`` that ``cache`` does not know, until there are ``count``."""
    taken: list[str] = []
    for batch in batches:
        taken.extend(cache.unknown(batch))
        if len(taken) >= count:
            break
    return taken


def _chunked(first: list[str], rest: Iterator[list[str]]) -> Iterator[list[str]]:
    buffer = first
    for chunk in rest:
        buffer.extend(chunk)
        while len(buffer) >= CHUNK:
            yield buffer[:CHUNK]
            buffer = buffer[CHUNK:]
    while buffer:
        yield buffer[:CHUNK]
        buffer = buffer[CHUNK:]
