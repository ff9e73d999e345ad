"""Work that many requests ask for at once, done once for all of them.

A collection on demand (the API's ``POST /collect``, the desk's "Collect now") must start
after it was asked for: one already running may have read a feed a moment too early. Asked
for together, they share the next run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool

T = TypeVar("T")


class Coalesced(Generic[T]):
    """Runs ``work`` in a worker thread, one run at a time. A caller gets the result of a
    run that started after it called: the next one, shared with everyone who called
    before it started. A caller that goes away does not stop the run the others wait on."""

    def __init__(self, work: Callable[[], T]) -> None:
        self._work = work
        self._lock = asyncio.Lock()
        self._next: asyncio.Future[T] | None = None
        self._runs: set[asyncio.Task[None]] = set()

    async def __call__(self) -> T:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            run = asyncio.create_task(self._run(self._next))
            self._runs.add(run)  # held until done: the loop keeps only a weak reference
            run.add_done_callback(self._runs.discard)
        return await asyncio.shield(self._next)

    async def _run(self, result: asyncio.Future[T]) -> None:
        async with self._lock:  # after the run in progress, if there is one
            self._next = None  # callers from now on need a run that starts later
            try:
                result.set_result(await run_in_threadpool(self._work))
            except Exception as exc:
                result.set_exception(exc)
                result.exception()  # retrieved here: asyncio would log one nobody awaited
