"""The addresses of a member file not read before as it is, judged by a pool of processes.

email-validator costs about 40-100 µs an address in pure Python, so the first read of a new
1,000,000-member list spent most of a minute on one core. While such a file is read row by
row, its addresses are handed, ahead of the read, in chunks to one process per core, which
validates those the address cache does not know yet and stores every verdict (accepted with
the normalised form, or refused with the reason) in the cache itself; the read, waiting for
the verdicts of the rows it reaches (``Prevalidation``), finds each address there and reports
exactly what it would have reported alone. A file with fewer addresses than ``POOL_FROM``
is left to that read: a pool takes longer to start than they take. A larger one goes to the
pool even when the cache knows its addresses (a list edited since it was last read): the
processes look them up in parallel, and the read takes each row they accept without asking
the cache. A read that looked every address up itself took longer than a pool's first
validation of the same list (``bench/desk_lists.py``, "after an edit of one row").

The processes are fresh interpreters (``python -m newsletter.lists.validateworker``), as the
send's helper processes are: a forked child would inherit the parent's threads and database
connections, and ``multiprocessing``'s spawn re-runs the parent's main script, which a
script without an ``if __name__ == "__main__"`` guard cannot survive. Each takes one chunk
at a time (a JSON line on its standard input: the address of every record, in file order)
and answers with a short line: how many it validated, and the records whose address is not
accepted as written (``validateworker``), so neither side ever waits on a full pipe. It
stores the verdicts in the cache too, later, many chunks to a transaction.

Those answers (``Judged``) let the read take every other record of a chunk as it does in a
file the cache vouches for: no look-up, no validation, only a test that the address it
split is the one the pool judged (a file that changes while it is read is checked the full
way where it differs). A record the pool did not pass is checked the full way, with the
pool's verdict in hand.
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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, NamedTuple

from ..errors import ConfigError, ListError
from ..processes import child_environment
from .address import normalise_address
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
#: A record of a chunk whose address is not accepted as written: its place in the chunk and
#: its verdict ((None, None): the record has no address to ask about).
Irregular = tuple[int, str | None, str | None]
#: Chunks answered but not yet reached by the read: the pool waits beyond them, so that it
#: never holds more than so many addresses (about 10 MB) for a read that is slower than it.
#: A send's read stops to sort and write each run of up to 100,000 members it has read
#: (``store.audience.in_address_runs``); with room for a run's chunks, the pool validates
#: the next run meanwhile. With 4, it idled through each write: a first send of 1,000,000
#: new members kept two cores 89 % busy, against 95 % now, for the same CPU (``bench/send.py``
#: prints the share).
HELD = 24


class Judged(NamedTuple):
    """One chunk the pool has answered: the addresses of data records ``start`` onwards (as
    ``clean_rows`` counts them, "" where a record has none to ask about), the places of those
    not accepted as written, and the pool's verdicts on those addresses."""

    start: int
    addresses: list[str]
    irregular: frozenset[int]
    told: dict[str, Verdict]

    @property
    def end(self) -> int:
        return self.start + len(self.addresses)

    @classmethod
    def of(cls, start: int, addresses: list[str], irregular: list[Irregular]) -> Judged:
        told = {addresses[at]: (form, reason) for at, form, reason in irregular if addresses[at]}
        return cls(start, addresses, frozenset(at for at, _, _ in irregular), told)


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
    read). Now the read asks for the pool's answers as it reaches their rows: ``judged`` (a
    read of recipients) for each chunk, which also says which records it may take as they
    are, or ``verdicts_on`` (a read that checks every row) for each block of rows. Chunks
    are answered in the order they were sent, so the rows answered only ever grow. The
    answers, not the cache, carry the verdicts to the read: a process stores them in
    transactions of many chunks, so the cache has them only later (a read that looked them
    up there validated most of the file a second time itself)."""

    def __init__(self, path: Path, cache_file: Path, pool_from: int = POOL_FROM) -> None:
        self.validated = 0  # by the pool, once ``close`` has returned
        self._path, self._cache_file, self._pool_from = path, cache_file, pool_from
        self._through = 0  # data records of the file the pool has answered for
        self._done = False  # no more verdicts will come: nothing to wait for
        self._stopping = False
        self._judged: collections.deque[Judged] = collections.deque()  # answered, not read
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="prevalidation", daemon=True)
        self._thread.start()

    def verdicts_on(self, first: int, addresses: Sequence[str]) -> dict[str, Verdict]:
        """The pool's verdicts on ``addresses``, those of data records ``first`` onwards in
        order ("" for a record with none to ask about), once it has answered for them:
        accepted as written, or what it told. An address the pool judged as another (the
        file changed since its scan) or did not answer for is left out: the read looks it
        up or validates it itself."""
        found: dict[str, Verdict] = {}
        chunk: Judged | None = None
        for index, address in enumerate(addresses, start=first):
            if chunk is None or index >= chunk.end:
                chunk = self.judged(index)
                if chunk is None:
                    break
            at = index - chunk.start
            if address and chunk.addresses[at] == address:
                found[address] = chunk.told[address] if at in chunk.irregular else (address, None)
        return found

    def judged(self, record: int) -> Judged | None:
        """The answered chunk that holds data record ``record``, once it is answered; None
        when the pool will not answer for it (it stopped, or never started). Chunks before
        it are let go: the read asks in file order."""
        with self._changed:
            self._let_go(record)
            self._changed.wait_for(lambda: self._done or self._through > record)
            if self._judged and self._judged[0].start <= record < self._judged[0].end:
                return self._judged[0]
            return None

    def _let_go(self, record: int) -> None:
        """Drop the answered chunks that end before data record ``record`` (the read is past
        them), making room for the pool's next answers. Under ``_changed``."""
        while self._judged and self._judged[0].end <= record:
            self._judged.popleft()
        self._changed.notify_all()

    def close(self) -> int:
        """Stop after the chunks in hand (a reader that stopped early); how many the pool
        validated."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
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

    def _advance(self, judged: Judged) -> None:
        """Hand the read an answered chunk, once it has read past all but ``HELD`` of those
        it holds."""
        with self._changed:
            self._changed.wait_for(lambda: self._stopping or len(self._judged) < HELD)
            self._judged.append(judged)
            self._through = judged.end
            self._changed.notify_all()

    def _take_answer(self, worker: subprocess.Popen[str], start: int, chunk: list[str]) -> None:
        validated, irregular = _answer(worker, len(chunk))
        self.validated += validated
        self._advance(Judged.of(start, chunk, irregular))

    def _validate(self) -> None:
        try:
            if not _at_least(_address_batches(self._path), self._pool_from):
                return
        except (OSError, ListError):
            return  # left to the read, which reports it
        workers = [_start_worker(self._cache_file) for _ in range(_processes())]
        # Two chunks each where a pipe can hold a whole chunk: the next is there when a
        # process answers, and it never waits for this thread to send it one.
        workers *= 2 if all(_widened(worker) for worker in workers) else 1
        busy: collections.deque[tuple[subprocess.Popen[str], int, list[str]]] = \
            collections.deque()
        try:  # a worker that fails leaves the rest of the file to the row-by-row read
            for start, chunk in _chunked(_address_batches(self._path)):
                if self._stopping:
                    break
                if len(busy) == len(workers):  # all in hand: take the oldest chunk's answer
                    worker, sent_start, sent = busy.popleft()
                    self._take_answer(worker, sent_start, sent)
                else:
                    worker = workers[len(busy)]
                _send(worker, chunk)
                busy.append((worker, start, chunk))
            for worker, sent_start, sent in busy:
                self._take_answer(worker, sent_start, sent)
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


def _answer(worker: subprocess.Popen[str], sent: int) -> tuple[int, list[Irregular]]:
    """How many of the ``sent`` addresses last sent to ``worker`` it validated (their
    verdicts reach the cache with its next transaction), and the records it did not accept
    as written."""
    assert worker.stdout is not None
    line = worker.stdout.readline()
    if not line:
        raise OSError(f"an address validation process ended (exit code {worker.wait()})")
    validated, irregular = json.loads(line)
    if not 0 <= validated <= sent:
        raise ValueError(f"{validated} verdicts for {sent} addresses")
    if not all(0 <= at < sent for at, _, _ in irregular):
        raise ValueError(f"a verdict on no record of a chunk of {sent}")
    return int(validated), [(int(at), form, reason) for at, form, reason in irregular]


def _stop(worker: subprocess.Popen[str]) -> None:
    if worker.stdin is not None:
        with contextlib.suppress(BrokenPipeError):
            worker.stdin.close()  # its end of input: it exits
    if worker.stdout is not None:
        worker.stdout.close()
    worker.wait()


def _address_batches(path: Path) -> Iterator[list[str]]:
    """The address of each data record of the file, in order, ``LOOKUP`` records at a time:
    stripped, as the row-by-row read asks the cache about it, or "" where the record has
    none to ask about (no address, or not as many fields as columns).

    The rows are split the lean way (``clean_rows``, a third of ``iter_records``' cost); the
    scan ends where the file stops being well-formed CSV, and the read checks the records
    after it the full way."""
    with path.open(encoding="utf-8-sig", newline="", buffering=SCAN_BUFFER) as handle:
        header = first_header(iter_records(handle, path), path)
        at, width = header.email_index, len(header.columns)
        batch: list[str] = []
        with contextlib.suppress(csv.Error, UnicodeDecodeError):
            for fields in clean_rows(handle):  # after the header
                batch.append(fields[at].strip() if len(fields) == width else "")
                if len(batch) >= LOOKUP:
                    yield batch
                    batch = []
        if batch:
            yield batch


def _at_least(batches: Iterator[list[str]], count: int) -> bool:
    """Whether ``batches`` hold ``count`` addresses or more (read only that far)."""
    found = 0
    for batch in batches:
        found += sum(1 for address in batch if address)
        if found >= count:
            return True
    return found >= count


def _chunked(batches: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
    """Chunks of about ``CHUNK`` records' addresses, each with its first record's place."""
    chunk: list[str] = []
    start = 0
    for batch in batches:
        chunk.extend(batch)
        if len(chunk) >= CHUNK:
            yield start, chunk
            start += len(chunk)
            chunk = []
    if chunk:
        yield start, chunk
