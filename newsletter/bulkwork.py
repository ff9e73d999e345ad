"""Fewer garbage collections while a send moves a million recipients through Python.

CPython's cyclic collector runs each time 700 more container objects (lists, dicts,
instances) have been made than freed. Freezing an audience and sending it make and drop a
few per recipient: a CSV row, a recipient, its merge values. In a 1,000,000-member freeze
the collector ran about 2,200 times and took 1.2 s of the 10; its full passes walked every
object the process had loaded (modules, templates, SQLAlchemy's tables), 16 times.

Nothing these loops make forms a reference cycle: reference counting frees it all. So for
the length of the work the youngest generation's threshold is raised above what a freeze's
chunk or a batch per sender thread keeps alive at once, and the objects alive when the work
starts are set aside (``gc.freeze``), so that a full pass no longer walks them. Both are
put back when the last piece of such work in the process ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: Container objects made (net of those freed) before the youngest generation is collected.
BULK_THRESHOLD = 25_000


class _Collector:
    """The process-wide setting, shared by every thread doing bulk work."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved = gc.get_threshold()

    def enter(self) -> None:
        with self._lock:
            if self._users == 0:
                self._saved = gc.get_threshold()
                gc.freeze()
                gc.set_threshold(max(BULK_THRESHOLD, self._saved[0]), *self._saved[1:])
            self._users += 1

    def leave(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                gc.set_threshold(*self._saved)
                gc.unfreeze()


_COLLECTOR = _Collector()


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Around a freeze or a send; nests, and may be entered by several threads at once."""
    _COLLECTOR.enter()
    try:
        yield
    finally:
        _COLLECTOR.leave()
