"""The publication's machinery over the API: a collection on demand (a CMS's publish hook),
and the status ``newsletter status`` shows.

A hook fires when an article is published, so the collection it asks for must start after
it arrived: one already running may have read the feed a moment too early. Hooks that
arrive together share one collection (``web.coalesced``), and one collection runs at a time
for the API in each process serving it; two collecting at once (another process, the desk's
"Collect now", the scheduler) is harmless, as each article is stored once whoever finds it
(``sources.collect``) and drafted once (``cadence.collect_and_publish``).
"""

from __future__ import annotations

from ...publisher import Publisher
from ...schedule import cadence
from ..coalesced import Coalesced
from . import status
from .routing import Call, Operation
from .schemas import CollectAnswer, StatusAnswer


class ServiceApi:
    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.collection = Coalesced(lambda: cadence.collect_and_publish(publisher))

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

    async def collect(self, call: Call) -> CollectAnswer:
        done = await self.collection()
        report, outcomes = done.report, done.lists
        instant = [
            {"list": o.list_id, "drafted": o.drafted, "queued": o.queued, "waiting": o.waiting,
             "held": [f"issue {h.issue_id}: {h.reason}" for h in o.held]}
            for o in outcomes
        ]
        return CollectAnswer.model_validate({**report.as_dict(), "instant": instant})

    def status(self, call: Call) -> StatusAnswer:
        publisher = self.publisher
        return StatusAnswer.model_validate(status.gather(publisher.settings, publisher.store))
