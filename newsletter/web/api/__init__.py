"""The HTTP API under ``/api/v1/``, for scripts: what an editor does on the desk, with a
token instead of a session (``newsletter tokens``), JSON in and out, and one OpenAPI 3.1
document (``GET /api/v1/openapi.json``) made from the same route table.

``api_routes`` mounts it for ``create_app``. Adding an endpoint is one ``Operation`` in a
module's ``operations()`` (``issues.py`` has many): its route, its checks, its problems
and its place in the document all follow from it. See docs/api.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from pydantic import RootModel
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Receive, Scope, Send

from ...config import Settings
from ...publisher import Publisher
from ...store import Store
from .articles import ArticleApi
from .issues import IssueApi
from .lists import ListApi
from .openapi import document
from .problems import ApiProblem
from .routing import PREFIX, Call, Operation, endpoint
from .sends import SendApi
from .service import ServiceApi
from .suppressions import SuppressionApi

__all__ = ["api_routes", "operations"]

#: Lifts the app's own body limit (``FORM_MAX_BODY``) for the API, which counts its bodies
#: itself (``routing.MAX_BODY``) so that a 413 comes as a problem like every other error:
#: Starlette's limit would answer a declared length over it in plain text.
UNLIMITED = 2**62


def operations(publisher: Publisher) -> list[Operation]:
    """Every operation of the API, in the order the document lists them."""
    return [
        *IssueApi(publisher).operations(),
        *SendApi(publisher).operations(),
        *ArticleApi(publisher).operations(),
        *ListApi(publisher).operations(),
        *SuppressionApi(publisher).operations(),
        *ServiceApi(publisher).operations(),
    ]


class Document(RootModel[dict[str, Any]]):
    """The OpenAPI document."""


def with_document(table: Sequence[Operation]) -> list[Operation]:
    """The table and the operation that serves its document (which lists itself too)."""
    made: list[Document] = []

    async def openapi(call: Call) -> Document:
        return made[0]

    every = [*table, Operation("GET", "/openapi.json", "openapi", "This document", openapi,
                               Document, role="public", tags=("service",))]
    made.append(Document(document(every, title="newsletter API", version="1")))
    return every


def api_app(store: Store, table: Sequence[Operation]) -> Starlette:
    by_path: dict[str, list[Operation]] = {}
    for op in table:
        by_path.setdefault(op.served_path, []).append(op)
    routes = [Route(path, PathEndpoint(store, ops)) for path, ops in by_path.items()]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_problem})


class PathEndpoint:
    """The operations of one path, by method: a method none of them takes is a 405 that
    lists every method the path takes (one route per operation would list one's)."""

    def __init__(self, store: Store, ops: Sequence[Operation]) -> None:
        self.handlers = {op.method: endpoint(store, op) for op in ops}
        if "GET" in self.handlers:
            self.handlers["HEAD"] = self.handlers["GET"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        handler = self.handlers.get(request.method)
        if handler is None:
            allowed = ", ".join(sorted(self.handlers))
            raise HTTPException(405, headers={"Allow": allowed})
        response = await handler(request)
        await response(scope, receive, send)


async def http_problem(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, a method the route does not take)."""
    assert isinstance(exc, HTTPException)
    status, path = exc.status_code, request.url.path[:200]
    details = {
        404: f"there is nothing at {path}; GET {PREFIX}/openapi.json lists what there is",
        405: f"{path} does not take {request.method[:20]}; it takes "
             f"{(exc.headers or {}).get('Allow', 'other methods')}",
    }
    detail = details.get(status, HTTPStatus(status).phrase)
    return ApiProblem(status, detail, headers=dict(exc.headers or {})).response()


def api_routes(settings: Settings, store: Store) -> list[BaseRoute]:
    table = with_document(operations(Publisher(settings, store)))
    return [Mount(PREFIX, app=api_app(store, table), max_body_size=UNLIMITED)]
