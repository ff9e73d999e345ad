"""The API's routes, declared once. An ``Operation`` names a method and a path, who may call
it, what its query and body hold and what it answers, as pydantic models; the same table
makes the Starlette routes (``endpoint``) and the OpenAPI document (``openapi.py``), so a
route cannot be served one way and documented another.

Every request to an operation goes the same way: the token (401, or 403 for a role too
low), the ids in the path (404), the query (400), the body (413, 415, 400 for JSON that
does not parse, 422 for values refused), then the operation itself in a worker thread,
recorded in an issue's history as ``api:<token name>``. What the library refuses becomes a
problem with its message: 404 for what does not exist, 409 for a move the state machine or
the pre-send checks refuse, 422 for a value it cannot use.
"""

from __future__ import annotations

import inspect
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ...errors import (
    ConfigError,
    IssueStateError,
    LintError,
    NewsletterError,
    NotFoundError,
    ProviderError,
    RenderError,
    StoreError,
)
from ...store import Store
from ...store import issues as issue_store
from ...store.apitokens import ApiToken
from ..archive import issue_id_from_path
from . import tokens
from .problems import ApiProblem, FieldProblem, Where, invalid

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
#: The largest request body read (a draft's introduction is the longest thing sent).
MAX_BODY = 256 * 1024
JSON_TYPE = "application/json"
CSV_TYPE = "text/csv"
#: The longest text a path may name (an address is at most 254 characters).
MAX_PATH_TEXT = 320

Role = Literal["editor", "admin", "public"]


@dataclass(frozen=True, slots=True)
class Call:
    """What an operation is given: who calls, the ids in the path, the query and the body."""

    actor: str
    ids: dict[str, int]
    query: Any = None
    body: Any = None
    #: The path's text parameters (``Operation.text_ids``): a list's id, an address.
    names: dict[str, str] = field(default_factory=dict)
    #: When the request arrived (``time.monotonic()``), for reads shared with other requests.
    asked_at: float | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer with a status other than the operation's own, or a ``Location``."""

    answer: BaseModel
    status: int
    location: str | None = None


@dataclass(frozen=True, slots=True)
class Streamed:
    """An answer sent a piece at a time in the operation's ``media_type`` (an export), as
    a download named ``filename``."""

    chunks: Iterable[str]
    filename: str


Result = BaseModel | Reply | Streamed
Handler = Callable[[Call], Result] | Callable[[Call], Awaitable[Result]]


@dataclass(frozen=True, slots=True)
class Operation:
    """One route of the API: a plain function of a ``Call`` (run in a worker thread) or a
    coroutine function (for work that must not hold a thread while it waits)."""

    method: str
    path: str
    name: str
    summary: str
    run: Handler
    answer: type[BaseModel]
    status: int = 200
    #: Other statuses it answers with on success (a draft of nothing new is a 200).
    also: tuple[int, ...] = ()
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    role: Role = "editor"
    #: Problems it answers besides the ones every operation of its kind may.
    refusals: tuple[int, ...] = ()
    description: str = ""
    tags: tuple[str, ...] = field(default=())
    #: Path parameters that are text, not numbers: a list's id, an address.
    text_ids: tuple[str, ...] = ()
    #: How the answer is sent; anything but JSON is ``Streamed``, its schema ``answer``'s.
    media_type: str = JSON_TYPE

    @property
    def path_ids(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)

    @property
    def served_path(self) -> str:
        """The path as Starlette matches it: a text parameter that ends it takes the rest
        of the path, for an address may hold a slash (sent as %2F, matched decoded)."""
        last = next(iter(self.path_ids[-1:]), "")
        if last in self.text_ids and self.path.endswith("{" + last + "}"):
            return self.path.removesuffix("}") + ":path}"
        return self.path

    def problem_statuses(self) -> list[int]:
        statuses = {500, *self.refusals}
        if self.role != "public":
            statuses.add(401)
        if self.role == "admin":
            statuses.add(403)
        if self.path_ids:
            statuses.add(404)
        if self.query is not None:
            statuses.add(400)
        if self.body is not None:
            statuses.update((400, 413, 415, 422))
        return sorted(statuses)


# -- who calls ---------------------------------------------------------------------------------
def unauthorized(detail: str, error: str = "") -> ApiProblem:
    challenge = 'Bearer realm="newsletter"' + (f', error="{error}"' if error else "")
    return ApiProblem(401, detail, headers={"WWW-Authenticate": challenge})


def presented_token(request: Request, role: Role) -> str | None:
    """The token the request carries (None for a public operation); a 401 without one."""
    if role == "public":
        return None
    presented = tokens.bearer_token(request.headers.get("authorization"))
    if presented is None:
        raise unauthorized(
            "this needs an API token: send it as 'Authorization: Bearer <token>' "
            "(`newsletter tokens create` makes one)"
        )
    return presented


def checked_token(store: Store, presented: str | None, role: Role) -> ApiToken | None:
    """The live token ``presented`` is, allowed ``role`` (a 401 or a 403 otherwise); reads
    the database, so it runs in a worker thread."""
    if presented is None:
        return None
    token = tokens.authenticate(store, presented)
    if token is None:
        raise unauthorized("the token is not one this publication knows, or it was revoked",
                           "invalid_token")
    if role == "admin" and token.role != "admin":
        raise ApiProblem(403, f"this needs an admin's token; {token.name} is an editor's")
    return token


async def caller(store: Store, request: Request, role: Role) -> ApiToken | None:
    presented = presented_token(request, role)
    if presented is None:
        return None
    return await run_in_threadpool(checked_token, store, presented, role)


# -- what it asks ----------------------------------------------------------------------------
def path_names(operation: Operation, request: Request) -> dict[str, str]:
    """The text parameters; one no such thing can be called is a 404 as well."""
    names = {}
    for name in operation.text_ids:
        raw = str(request.path_params[name])
        if not raw or len(raw) > MAX_PATH_TEXT or "\x00" in raw:
            raise ApiProblem(404, f"there is no {name.removesuffix('_id')} {raw[:40]!r}")
        names[name] = raw
    return names


def path_ids(operation: Operation, request: Request) -> dict[str, int]:
    ids = {}
    for name in operation.path_ids:
        if name in operation.text_ids:
            continue
        raw = str(request.path_params[name])
        found = issue_id_from_path(raw)
        if found is None:
            raise ApiProblem(404, f"there is no {name.removesuffix('_id')} {raw[:40]!r}")
        ids[name] = found
    return ids


def field_problems(exc: ValidationError, where: Where) -> list[FieldProblem]:
    return [
        FieldProblem.of(".".join(str(part) for part in error["loc"]) or where, where,
                        error["msg"])
        for error in exc.errors(include_url=False, include_input=False)
    ]


def refused(problems: list[FieldProblem], status: int) -> ApiProblem:
    detail = "; ".join(f"{p.field}: {p.message}" for p in problems[:5])
    return ApiProblem(status, detail, errors=problems)


def parse_query(operation: Operation, request: Request) -> Any:
    if operation.query is None:
        return None
    try:
        return operation.query.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise refused(field_problems(exc, "query"), 400) from exc


async def read_body(request: Request) -> bytes:
    """The body, refused with a 413 once it passes ``MAX_BODY`` (as declared, or as sent)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise too_large()
    return bytes(body)


def too_large() -> ApiProblem:
    return ApiProblem(413, f"the body is larger than {MAX_BODY // 1024} KiB")


async def parse_body(operation: Operation, request: Request) -> Any:
    if operation.body is None:
        return None
    raw = await read_body(request)
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if raw.strip() and media != JSON_TYPE and not media.endswith("+json"):
        raise ApiProblem(415, f"send the body as {JSON_TYPE}")
    try:
        return operation.body.model_validate_json(raw.strip() or b"{}")
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            message = exc.errors()[0]["msg"]
            raise ApiProblem(400, f"the body is not JSON: {message}") from exc
        raise refused(field_problems(exc, "body"), 422) from exc


# -- what the library says -------------------------------------------------------------------
#: The command line's words in the library's messages, and what an API caller writes instead.
API_WORDS = (
    ("give --again", 'give "again": true'),
    ("(issue queue --force)", '("force": true)'),
    ("leave out --at", "leave out at"),
)


def api_words(message: str) -> str:
    for cli, api in API_WORDS:
        message = message.replace(cli, api)
    return message


def problem_for(exc: NewsletterError) -> ApiProblem:
    """The problem a library error is: its message, with the status that says its kind."""
    if isinstance(exc, LintError):
        findings = [api_words(f) for f in exc.findings]
        return ApiProblem(409, "the pre-send checks refused it", findings=findings)
    statuses: list[tuple[type[NewsletterError], int]] = [
        (NotFoundError, 404), (IssueStateError, 409), (ConfigError, 422), (RenderError, 422),
        (ProviderError, 502), (StoreError, 503),
    ]
    status = next((s for kind, s in statuses if isinstance(exc, kind)), 500)
    return ApiProblem(status, api_words(str(exc)))


@contextmanager
def blame(
    field_name: str,
    *,
    kinds: tuple[type[NewsletterError], ...] = (ConfigError, NotFoundError),
    options: Mapping[str, str] | None = None,
) -> Iterator[None]:
    """What the library refuses (or does not find) inside the block is a body field's
    problem: a 422 naming it. ``options`` maps a command-line option that a message starts
    with to the field it stands for here."""
    try:
        yield
    except kinds as exc:
        message = api_words(str(exc))
        for option, name in (options or {}).items():
            if message.startswith(option + " "):
                field_name, message = name, name + message[len(option):]
        raise invalid(field_name, message) from exc


# -- the endpoint ----------------------------------------------------------------------------
def endpoint(store: Store, operation: Operation) -> Callable[[Request], Awaitable[Response]]:
    in_one_go = operation.body is None and not inspect.iscoroutinefunction(operation.run)

    async def serve(request: Request) -> Response:
        asked_at = time.monotonic()
        try:
            if in_one_go:
                presented = presented_token(request, operation.role)
                return respond(operation, await run_in_threadpool(
                    _without_body, store, operation, request, presented, asked_at))
            token = await caller(store, request, operation.role)
            call = Call(
                actor=f"api:{token.name}" if token else "api",
                ids=path_ids(operation, request),
                query=parse_query(operation, request),
                body=await parse_body(operation, request),
                names=path_names(operation, request),
            )
            return respond(operation, await perform(operation, call))
        except ApiProblem as exc:
            return exc.response()
        except NewsletterError as exc:
            return problem_for(exc).response()
        except HTTPException as exc:  # Starlette's own, reading the request
            return ApiProblem(exc.status_code, str(exc.detail)).response()
        except Exception:
            log.exception("API %s %s failed", request.method, request.url.path)
            return ApiProblem(500, "the server failed; the log says why").response()

    serve.__name__ = operation.name
    return serve


async def perform(operation: Operation, call: Call) -> Result:
    if inspect.iscoroutinefunction(operation.run):
        result: Result = await operation.run(call)
        return result
    return await run_in_threadpool(_acting, cast(Callable[[Call], Result], operation.run), call)


def _without_body(
    store: Store, operation: Operation, request: Request, presented: str | None,
    asked_at: float,
) -> Result:
    """A sync operation that takes no body, from the token on, in one worker thread: under
    twenty clients a second hop to a thread for the token cost more than the lookup itself
    (the threads contend for the interpreter lock). The checks come in the usual order."""
    token = checked_token(store, presented, operation.role)
    call = Call(
        actor=f"api:{token.name}" if token else "api",
        ids=path_ids(operation, request),
        query=parse_query(operation, request),
        names=path_names(operation, request),
        asked_at=asked_at,
    )
    return _acting(cast(Callable[[Call], Result], operation.run), call)


def _acting(run: Callable[[Call], Result], call: Call) -> Result:
    with issue_store.acting_as(call.actor):
        return run(call)


def respond(operation: Operation, result: Result) -> Response:
    if isinstance(result, Streamed):
        return StreamingResponse(
            (chunk.encode("utf-8") for chunk in result.chunks),
            media_type=f"{operation.media_type}; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{result.filename}"'},
        )
    reply = result if isinstance(result, Reply) else Reply(result, operation.status)
    headers = {"Location": reply.location} if reply.location else None
    return Response(
        reply.answer.model_dump_json(), status_code=reply.status, headers=headers,
        media_type=JSON_TYPE,
    )
