"""The publication's machinery over the API: a collection on demand (a CMS's publish hook),
and the status ``newsletter status`` shows.

A hook fires when an article is published, so the collection it asks for must start after
it arrived: one already running may have read the feed a moment too early. Hooks that
arrive together share one collection, and one collection runs at a time in each process
serving the API; two processes collecting at once is harmless, as each article is stored
once whoever finds it (``sources.collect``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool

from ...publisher import Publisher
from ...schedule import cadence
from ...sources.collect import CollectReport
from . import status
from .routing import Call, Operation
from .schemas import CollectAnswer, StatusAnswer

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


class ServiceApi:
    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.collection = Coalesced(self._collect)

    def operations(self) -> list[Operation]:
        return [
            Operation("POST", "/collect", "collect", "Collect every source now",
                      self.collect, CollectAnswer, tags=("service",),
                      description="What the scheduler's collection does, for a CMS's publish "
                      "hook: every source is read, and each instant list drafts (and, if "
                      "`auto`, queues) an issue of each new article. The collection starts "
                      "after the request arrived; requests that arrive while one runs share "
                      "the next."),
            Operation("GET", "/status", "status", "The scheduler, issues in progress and "
                      "the last collection", self.status, StatusAnswer, role="admin",
                      tags=("service",)),
        ]

    def _collect(self) -> tuple[CollectReport, list[cadence.ListOutcome]]:
        """What the scheduler's collection does: collect, then draft (and queue, for an
        ``auto`` list) an issue of each new article for every instant list. The drafts
        claim their articles, so the scheduler drafting at the same moment cannot draft
        one twice (``issue_store.create``)."""
        return self.publisher.collect(), cadence.after_collection(self.publisher)

    async def collect(self, call: Call) -> CollectAnswer:
        report, outcomes = await self.collection()
        instant = [
            {"list": o.list_id, "drafted": o.drafted, "queued": o.queued, "waiting": o.waiting,
             "held": [f"issue {h.issue_id}: {h.reason}" for h in o.held]}
            for o in outcomes
        ]
        return CollectAnswer.model_validate({**report.as_dict(), "instant": instant})

    def status(self, call: Call) -> StatusAnswer:
        publisher = self.publisher
        return StatusAnswer.model_validate(status.gather(publisher.settings, publisher.store))
