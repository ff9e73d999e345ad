"""Suppressions over the API, for administrators: find them a page at a time by how the
address starts, suppress an address, lift a suppression, and export them as CSV. Each
calls ``editor.suppressions``, as ``newsletter suppressions …`` and the desk's page do, so
lifting a hard bounce or a complaint needs ``acknowledged=true`` here as it needs the
desk's box ticked.
"""

from __future__ import annotations

import itertools

from ...editor import suppressions as suppressing
from ...editor.suppressions import InvalidAddressError, SuppressionCursor, UnacknowledgedError
from ...errors import NewsletterError
from ...models import ALL_LISTS
from ...publisher import Publisher
from ...store.suppressions import Suppression
from . import paging
from .paging import SuppressionsCursor
from .problems import ApiProblem, invalid
from .routing import CSV_TYPE, Call, Operation, Reply, Streamed
from .schemas import (
    ExportQuery,
    LiftedAnswer,
    LiftQuery,
    SuppressBody,
    SuppressedAnswer,
    SuppressionOut,
    SuppressionQuery,
    SuppressionsCsv,
    SuppressionsPage,
)

TAGS = ("suppressions",)


class SuppressionApi:
    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.store = publisher.store

    def operations(self) -> list[Operation]:
        return [
            Operation("GET", "/suppressions", "listSuppressions", "Suppressed addresses, by "
                      "address", self.listing, SuppressionsPage, query=SuppressionQuery,
                      role="admin", tags=TAGS),
            Operation("POST", "/suppressions", "suppress", "Stop mail to an address, for a "
                      "list or every list", self.add, SuppressedAnswer, status=201,
                      also=(200,), body=SuppressBody, role="admin", refusals=(503,),
                      tags=TAGS, description="A 201 when it is new there; a 200 when it "
                      "was suppressed there already, which keeps its first reason."),
            Operation("DELETE", "/suppressions/{email}", "liftSuppression", "Send to an "
                      "address again", self.lift, LiftedAnswer, query=LiftQuery,
                      role="admin", refusals=(422,), text_ids=("email",), tags=TAGS,
                      description="Lifts its suppression for `scope`, or every one it has "
                      "(which also forgets its soft bounces). A hard bounce or a complaint "
                      "is lifted only with `acknowledged=true`, else a 422 says why. A 404 "
                      "when it is not suppressed there."),
            Operation("GET", "/suppressions.csv", "exportSuppressions", "Every suppression, "
                      "as CSV", self.export, SuppressionsCsv, query=ExportQuery, role="admin",
                      media_type=CSV_TYPE, tags=TAGS, description="The columns of `newsletter "
                      "suppressions export`, streamed a piece at a time."),
        ]

    def listing(self, call: Call) -> SuppressionsPage:
        query: SuppressionQuery = call.query
        cursor = paging.decode(SuppressionsCursor, query.cursor)
        after = SuppressionCursor(cursor.email, cursor.scope) if cursor else None
        page = suppressing.suppression_page(self.store, query.q, after=after, size=query.limit)
        following = page.next
        return SuppressionsPage(
            items=[_suppression(s) for s in page.entries],
            next_cursor=paging.encode(SuppressionsCursor(email=following.email,
                                                         scope=following.scope))
            if following else None,
        )

    def add(self, call: Call) -> Reply:
        body: SuppressBody = call.body
        self._check_scope(body.scope)
        try:
            done = suppressing.suppress(self.store, body.email, reason=body.reason,
                                        scope=body.scope, source=call.actor, note=body.note)
        except InvalidAddressError as exc:
            raise invalid("email", exc.reason) from exc
        return Reply(SuppressedAnswer.model_validate(done.as_dict()), 201 if done.added else 200)

    def _check_scope(self, scope: str) -> None:
        if scope == ALL_LISTS:
            return
        try:
            known = sorted(self.publisher.config.lists)
        except NewsletterError as exc:
            raise ApiProblem(503, "the publication file cannot be read just now, so no list "
                             "can be named (GET /api/v1/lists says why)") from exc
        if scope not in known:
            raise invalid("scope", f"there is no list {scope!r}; give one of "
                          f"{', '.join(known)}, or '{ALL_LISTS}' for every list")

    def lift(self, call: Call) -> LiftedAnswer:
        query: LiftQuery = call.query
        try:
            lifted = suppressing.lift(self.store, call.names["email"], query.scope,
                                      acknowledged=query.acknowledged)
        except UnacknowledgedError as exc:
            raise invalid("acknowledged", f"{exc} Send acknowledged=true to lift it anyway.",
                          where="query") from exc
        return LiftedAnswer(email=lifted.email,
                            lifted=[_suppression(s) for s in lifted.removed])

    def export(self, call: Call) -> Streamed:
        query: ExportQuery = call.query
        chunks = suppressing.csv_chunks(suppressing.export_rows(self.store, query.scope),
                                        for_spreadsheets=query.spreadsheet)
        # The first piece is read here: a store that fails is a problem, not a cut download.
        first = next(chunks)
        return Streamed(itertools.chain([first], chunks), "suppressions.csv")


def _suppression(found: Suppression) -> SuppressionOut:
    return SuppressionOut.model_validate(found.as_dict())
