"""Reads that arrive together share one run: twenty requests for the same issue's counts at
the same moment are answered by one count, not twenty.

Sharing never hands out an old answer. A caller joins only a run that has not started yet,
so whatever it is given was read after it asked, and saw every change committed before.
While a run is in progress, the callers that arrive wait for it to end and share the next
run, which one of them starts. Runs of one key follow each other; keys do not wait for each
other. A failed run is not shared: each caller that waited on it does the work itself.
"""

from __future__ import annotations

import threading
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


class Shared(Generic[K, T]):
    """Runs ``work`` for a key, shared by the calls for that key that arrive before it
    starts (see the module's docstring). Thread-safe; ``work`` runs in a caller's thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: dict[K, _Run[T]] = {}  # not started: newcomers join it
        self._running: dict[K, _Run[T]] = {}

    def __call__(self, key: K, work: Callable[[], T]) -> T:
        ahead: _Run[T] | None = None
        with self._lock:
            run = self._next.get(key)
            leads = run is None
            if run is None:
                run = self._next[key] = _Run()
                ahead = self._running.get(key)
            else:
                run.callers += 1
        if leads:
            return self._lead(key, run, ahead, work)
        run.finished.wait()
        if run.ok:
            return run.value  # type: ignore[return-value]
        return work()

    def waiting(self, key: K) -> int:
        """How many callers the key's next run (not started yet) will answer (for tests)."""
        with self._lock:
            run = self._next.get(key)
            return run.callers if run is not None else 0

    def _lead(self, key: K, run: _Run[T], ahead: _Run[T] | None, work: Callable[[], T]) -> T:
        """Start ``run`` once the run ahead of it (if any) has ended, and settle it."""
        if ahead is not None:
            ahead.finished.wait()
        with self._lock:
            del self._next[key]  # from now on, newcomers need a run that starts later
            self._running[key] = run
        try:
            value = work()
            run.value, run.ok = value, True
            return value
        finally:
            with self._lock:
                del self._running[key]
            run.finished.set()
