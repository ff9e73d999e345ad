"""The mailing lists over the API, read-only, as the desk's lists page shows them
(``schedule.listing``): title, cadence, schedule and next run, counts, and the problems
``newsletter lists check`` reports. The lists are files an administrator edits."""

from __future__ import annotations

from datetime import UTC

from ...errors import NewsletterError
from ...publisher import Publisher
from ...schedule.listing import ListOverview, ListsOverview, ListsReader, ProblemLine
from .issues import local_text
from .problems import ApiProblem
from .routing import Call, Operation
from .schemas import ListOut, ListProblem, ListsAnswer

TAGS = ("lists",)


class ListApi:
    def __init__(self, publisher: Publisher) -> None:
        # Its own reader, which remembers each list's check while its files are unchanged.
        self.reader = ListsReader(publisher.settings, publisher.store)

    def operations(self) -> list[Operation]:
        return [
            Operation("GET", "/lists", "listLists", "Every list: its schedule, next run, "
                      "counts and the problems of its files", self.listing, ListsAnswer,
                      refusals=(503,), tags=TAGS,
                      description="The first reading after a list's files change reads every "
                      "row (tens of seconds for a million members); later ones are quick."),
            Operation("GET", "/lists/{list_id}", "getList", "A list: its schedule, next run, "
                      "counts and the problems of its files", self.show, ListOut,
                      refusals=(503,), text_ids=("list_id",), tags=TAGS,
                      description="A 503 when the publication file has problems (GET /lists "
                      "names them), for then no list can be read."),
        ]

    def overview(self) -> ListsOverview:
        try:
            return self.reader.overview()
        except NewsletterError as exc:  # the job store unreadable, say
            raise ApiProblem(503, f"the lists cannot be read just now: {exc}") from exc

    def listing(self, call: Call) -> ListsAnswer:
        overview = self.overview()
        return ListsAnswer.model_validate({
            **overview.as_dict(),
            "problems": [_problem(p) for p in overview.problems],
            "lists": [_list(m) for m in overview.lists],
        })

    def show(self, call: Call) -> ListOut:
        list_id = call.names["list_id"]
        overview = self.overview()
        if overview.problems:
            named = "; ".join(str(p) for p in overview.problems[:3])
            raise ApiProblem(503, f"the publication file has problems, so no list can be "
                             f"read: {named}")
        found = next((m for m in overview.lists if m.id == list_id), None)
        if found is None:
            known = ", ".join(sorted(m.id for m in overview.lists)) or "none"
            raise ApiProblem(404, f"there is no list {list_id[:100]!r} (lists: {known})")
        return _list(found)


def _list(overview: ListOverview) -> ListOut:
    at = overview.next_run
    return ListOut.model_validate({
        **overview.as_dict(),
        "next_run": at.astimezone(UTC) if at else None,
        "next_run_local": local_text(at, overview.timezone),
        "problems": [_problem(p) for p in overview.problems],
    })


def _problem(line: ProblemLine) -> ListProblem:
    return ListProblem(severity=line.severity, where=line.where, message=line.message,
                       text=str(line))
