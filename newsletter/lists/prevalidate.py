"""The addresses of a member file not seen before, validated by a pool of processes.

email-validator costs about 40-100 µs an address in pure Python, so the first read of a new
1,000,000-member list spent most of a minute on one core. While such a file is read row by
row, its addresses are handed, ahead of the read, in chunks to one process per core, which
validates those the address cache does not know yet and stores every verdict (accepted with
the normalised form, or refused with the reason) in the cache itself; the read, waiting for
the verdicts of the rows it reaches (``Prevalidation``), finds each address there and reports
exactly what it would have reported alone. A file with fewer unknown addresses than
``POOL_FROM`` is left to that read: a pool takes longer to start than they take.

The processes are fresh interpreters (``python -m newsletter.lists.validateworker``), as the
send's helper processes are: a forked child would inherit the parent's threads and database
connections, and ``multiprocessing``'s spawn re-runs the parent's main script, which a
script without an ``if __name__ == "__main__"`` guard cannot survive. Each takes one chunk
at a time (a JSON line on its standard input) and answers with a short line once its
verdicts are committed (how many it validated), so neither side ever waits on a full pipe.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import json
import logging
import os
import subprocess
import sys
import threading
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
PIPE_SIZE = 1 << 20
#: The scan's file buffer: this thread waits for the interpreter lock after each read from
#: the disk (up to 5 ms while the row-by-row read holds it), so it reads in large pieces.
SCAN_BUFFER = 1 << 20

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


class Prevalidation:
    """The addresses of ``path`` that the cache does not know, validated over a pool, driven
    by a thread of this process while the caller reads the file row by row.

    The read used to wait for the whole pool before its first row, so one core idled through
    each phase (the main process while the pool validated, the pool while the main process
    read). Now the read asks ``wait_for`` before each block of rows, which returns as soon as
    the verdicts of those rows are committed; chunks are answered in the order they were
    sent, so the rows done only ever grow. Waiting is only for speed: an address the read
    meets before its verdict is stored is validated by the read itself, with the same
    verdict (``INSERT OR IGNORE`` keeps one)."""

    def __init__(self, path: Path, cache_file: Path, pool_from: int = POOL_FROM) -> None:
        self.validated = 0  # by the pool, once ``close`` has returned
        self._path, self._cache_file, self._pool_from = path, cache_file, pool_from
        self._through = 0  # data records of the file whose verdicts are all committed
        self._done = False  # no more verdicts will come: nothing to wait for
        self._stopping = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="prevalidation", daemon=True)
        self._thread.start()

    def wait_for(self, records: int) -> None:
        """Until the first ``records`` data records (as ``clean_rows`` counts them) have
        their verdicts in the cache, or the pool has stopped."""
        with self._changed:
            self._changed.wait_for(lambda: self._done or self._through >= records)

    def close(self) -> int:
        """Stop after the chunks in hand (a reader that stopped early); how many the pool
        validated."""
        self._stopping = True
        self._thread.join()
        return self.validated

    def _run(self) -> None:
        try:
            self._validate()
        except Exception as exc:  # any failure leaves the rest to the read, as it ever did
            log.warning("validating %s over several processes stopped: %s", self._path, exc)
        finally:
            with self._changed:
                self._done = True
                self._changed.notify_all()

    def _advance(self, through: int) -> None:
        with self._changed:
            self._through = through
            self._changed.notify_all()

    def _validate(self) -> None:
        try:
            batches = _address_batches(self._path)
            with contextlib.closing(AddressCache(self._cache_file)) as cache:
                first, through = _take_unknown(batches, cache, self._pool_from)
        except (OSError, ListError):
            return  # left to the read, which reports it
        if len(first) < self._pool_from:
            return
        workers = [_start_worker(self._cache_file) for _ in range(_processes())]
        # Two chunks each where a pipe can hold a whole chunk: the next is there when a
        # process answers, and it never waits for this thread to send it one.
        workers *= 2 if all(_widened(worker) for worker in workers) else 1
        busy: collections.deque[tuple[subprocess.Popen[str], int, int]] = collections.deque()
        try:  # a worker that fails leaves the rest of the file to the row-by-row read
            for chunk, upto in _chunked(first, through, batches):
                if self._stopping:
                    break
                if len(busy) == len(workers):  # all in hand: take the oldest chunk's answer
                    worker, sent, done_through = busy.popleft()
                    self.validated += _answer(worker, sent)
                    self._advance(done_through)
                else:
                    worker = workers[len(busy)]
                _send(worker, chunk)
                busy.append((worker, len(chunk), upto))
            for worker, sent, done_through in busy:
                self.validated += _answer(worker, sent)
                self._advance(done_through)
        finally:
            for worker in dict.fromkeys(workers):
                _stop(worker)


def _processes() -> int:
    return max(2, len(os.sched_getaffinity(0)))


def _widened(worker: subprocess.Popen[str]) -> bool:
    """Whether the pipe to ``worker`` could be made to hold a chunk (Linux: ``fcntl``'s
    ``F_SETPIPE_SZ``, 1 MiB at most unprivileged; a chunk is about 150 KB)."""
    try:
        import fcntl

        assert worker.stdin is not None
        return fcntl.fcntl(worker.stdin.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE) >= PIPE_SIZE
    except (ImportError, AttributeError, OSError):
        return False


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


def _address_batches(path: Path) -> Iterator[tuple[list[str], int]]:
    """The file's non-empty addresses, a few hundred at a time, each batch with the count of
    data records read through its last address.

    Only a hint for the row-by-row read that follows (an address missed here is validated
    there), so the rows are split the lean way (``clean_rows``, a third of ``iter_records``'
    cost), and the scan ends where the file stops being well-formed CSV."""
    with path.open(encoding="utf-8-sig", newline="", buffering=SCAN_BUFFER) as handle:
        header = first_header(iter_records(handle, path), path)
        at, width = header.email_index, len(header.columns)
        batch: list[str] = []
        records = 0
        with contextlib.suppress(csv.Error, UnicodeDecodeError):
            for records, fields in enumerate(clean_rows(handle), 1):  # after the header
                if len(fields) == width and (address := fields[at].strip()):
                    batch.append(address)  # as the row-by-row read asks the cache about it
                    if len(batch) >= LOOKUP:
                        yield batch, records
                        batch = []
        if batch:
            yield batch, records


def _take_unknown(
    batches: Iterator[tuple[list[str], int]], cache: AddressCache, count: int
) -> tuple[list[str], int]:
    """Addresses of ``batches`` that ``cache`` does not know, until there are ``count``, and
    the data records read through them."""
    taken: list[str] = []
    for batch, through in batches:
        taken.extend(cache.unknown(batch))
        if len(taken) >= count:
            return taken, through
    return taken, 0  # too few for a pool


def _chunked(
    first: list[str], through: int, rest: Iterator[tuple[list[str], int]]
) -> Iterator[tuple[list[str], int]]:
    """Chunks of about ``CHUNK`` addresses, each with the data records read through its
    last address (``first``'s pieces all with ``through``: only the last one is known)."""
    for at in range(0, len(first), CHUNK):
        yield first[at:at + CHUNK], through
    chunk: list[str] = []
    for batch, through in rest:
        chunk.extend(batch)
        if len(chunk) >= CHUNK:
            yield chunk, through
            chunk = []
    if chunk:
        yield chunk, through
