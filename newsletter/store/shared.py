"""Reads that arrive together share one run: twenty requests for the same issue's counts at
the same moment are answered by one count, not twenty.

Sharing never hands out an old answer. A caller joins only a run that started after it
asked, so whatever it is given saw every change committed before. That is the run that has
not started yet, or, for a caller that says when it was asked (``asked_at``: when its
request arrived, which may be a while before it gets here under load), the run in progress
if that started later. Otherwise the callers that arrive while a run is in progress wait
for it to end and share the next run, which one of them starts. Runs of one key follow
each other; keys do not wait for each other. A failed run is not shared: each caller that
waited on it does the work itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class _Run(Generic[T]):
    """One run of the work, and the callers waiting on it."""

    def __init__(self) -> None:
        self.finished = threading.Event()
        self.value: T | None = None
        self.ok = False
        self.callers = 1  # the one that starts it, and the ones that joined
        self.started = float("inf")  # time.monotonic() when its work began


class Shared(Generic[K, T]):
    """Runs ``work`` for a key, shared by the calls for that key that arrive before it
    starts (see the module's docstring). Thread-safe; ``work`` runs in a caller's thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: dict[K, _Run[T]] = {}  # not started: newcomers join it
        self._running: dict[K, _Run[T]] = {}

    def __call__(self, key: K, work: Callable[[], T], asked_at: float | None = None) -> T:
        """``work``'s value, or that of a run shared with other callers; ``asked_at``:
        when the caller was asked, on ``time.monotonic()``'s clock."""
        ahead: _Run[T] | None = None
        with self._lock:
            run = self._next.get(key)
            running = self._running.get(key)
            if asked_at is not None and running is not None and running.started >= asked_at:
                run = running
            leads = run is None
            if run is None:
                run = self._next[key] = _Run()
                ahead = running
            else:
                run.callers += 1
        if leads:
            return self._lead(key, run, ahead, work)
        run.finished.wait()
        if run.ok:
            return run.value  # type: ignore[return-value]
        return work()

    def callers(self, key: K) -> tuple[int, int]:
        """How many callers the key's run in progress and its next run will answer (for
        tests)."""
        with self._lock:
            running, waiting = self._running.get(key), self._next.get(key)
            return (running.callers if running else 0, waiting.callers if waiting else 0)

    def _lead(self, key: K, run: _Run[T], ahead: _Run[T] | None, work: Callable[[], T]) -> T:
        """Start ``run`` once the run ahead of it (if any) has ended, and settle it."""
        if ahead is not None:
            ahead.finished.wait()
        with self._lock:
            del self._next[key]  # from now on, newcomers need a run that starts later
            self._running[key] = run
            run.started = time.monotonic()  # before the work reads anything
        try:
            value = work()
            run.value, run.ok = value, True
            return value
        finally:
            with self._lock:
                del self._running[key]
            run.finished.set()
