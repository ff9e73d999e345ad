"""Appending bytes to a member file so that a crash never leaves a row half there.

Every writer of a member file — an append here, a ``Rewrite`` in ``edit`` — first takes the
file's lock: ``filelock`` on a sidecar ``.<name>.lock`` in the same folder. So an append
can never fall between an edit's check of the file and its replacement.

An append is one ``os.write`` of whole lines on a descriptor opened with ``O_APPEND``. A
process killed in the middle of a large write can still leave part of it (Linux stops a
write between pages when a fatal signal is pending), and a power cut can too. So before
writing, the append records what it is about to write and where (``.<name>.append``,
fsync'd); once the bytes are fsync'd, the record goes. The next writer that takes the lock
and finds a record checks the file: if it holds exactly a prefix of the recorded bytes at
the recorded place, the interrupted append is cut off (its caller never heard it succeed);
if the file holds something else there, someone edited it since, and it is left alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import ListError, LockError

#: How long a writer waits for another one (an admin's edit of a large file takes seconds).
LOCK_TIMEOUT_SECONDS = 120.0


def lock_path(path: Path) -> Path:
    hidden = path.name if path.name.startswith(".") else f".{path.name}"
    return path.with_name(f"{hidden}.lock")


def intent_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.append")


@contextmanager
def locked(path: Path, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
    """Hold ``path``'s lock, with any append a crash interrupted undone first."""
    with held(path, timeout):
        repair_interrupted_append(path)
        yield


@contextmanager
def held(path: Path, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
    """Hold ``path``'s lock (``.<name>.lock`` beside it), waiting up to ``timeout``."""
    lock = FileLock(lock_path(path), timeout=timeout)
    try:
        lock.acquire()
    except Timeout as exc:
        raise LockError(
            f"{path}: another program has been editing it for over {timeout:.0f} s "
            f"(its lock is {lock_path(path)}); try again later"
        ) from exc
    except OSError as exc:
        raise ListError(path, None, f"cannot create its lock file: {exc.strerror}") from exc
    try:
        yield
    finally:
        lock.release()


def append_text(path: Path, text: str) -> None:
    """Append ``text`` (whole lines) to ``path``, durably; the caller holds the lock."""
    data = text.encode("utf-8")
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        _record_intent(path, os.fstat(descriptor).st_size, text)
        view = memoryview(data)
        while view:
            written = os.write(descriptor, view)
            view = view[written:]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    intent_path(path).unlink(missing_ok=True)


def _record_intent(path: Path, offset: int, text: str) -> None:
    record = json.dumps({"offset": offset, "text": text}).encode("utf-8")
    descriptor = os.open(intent_path(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(descriptor, record)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def repair_interrupted_append(path: Path) -> bool:
    """Undo an append a crash cut short, if the file still ends with part of it; whether
    anything was cut. The caller holds the lock."""
    intent = _read_intent(intent_path(path))
    if intent is None:
        return False
    offset, data = intent
    cut = _is_torn_tail(path, offset, data)
    if cut:
        with path.open("r+b") as handle:
            handle.truncate(offset)
            handle.flush()
            os.fsync(handle.fileno())
    intent_path(path).unlink(missing_ok=True)
    return cut


def _read_intent(path: Path) -> tuple[int, bytes] | None:
    """The recorded append; None if there is none, or if the record itself was cut short
    (then the append had not started: it is written only once the record is durable)."""
    try:
        record = json.loads(path.read_bytes())
        return int(record["offset"]), str(record["text"]).encode("utf-8")
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        path.unlink(missing_ok=True)
        return None


def _is_torn_tail(path: Path, offset: int, data: bytes) -> bool:
    """Whether the file is its bytes before ``offset`` plus part of ``data`` (not none of it,
    not all)."""
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if not offset < size < offset + len(data):
                return False
            handle.seek(offset)
            return data.startswith(handle.read())
    except FileNotFoundError:
        return False
