"""Mailgun's messages and events APIs, as documented for v3."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any
from urllib.parse import unquote_to_bytes

from python_multipart.multipart import MultipartParser, parse_options_header

from .common import addresses, substitute, timestamp
from .core import Copy, FakeApi, FakeRequest, FakeResponse, Fault, Rendered, Submission

MAX_RECIPIENTS = 1000
RECIPIENT_VARIABLE = re.compile(r"%recipient\.([A-Za-z0-9_.-]+)%")
SEND_PATH = re.compile(r"/v3/([^/]+)/messages")
EVENTS_PATH = r"/v3/[^/]+/events(?:/[A-Za-z0-9_=-]+)?"


class MailgunApi(FakeApi):
    name = "mailgun"
    queries = (("GET", EVENTS_PATH, "events"),)

    def send_path(self, path: str) -> bool:
        return SEND_PATH.fullmatch(path) is not None

    def authenticate(self, request: FakeRequest) -> FakeResponse | None:
        expected = f"api:{self.credentials.mailgun_api_key}"
        if _basic_credentials(request) != expected:
            return self.unauthorized()
        domain = _domain(request.path)
        if domain != self.credentials.mailgun_domain:
            return FakeResponse.json(404, {"message": f"Domain not found: {domain}"})
        return None

    def unauthorized(self) -> FakeResponse:
        return FakeResponse.text(401, "Forbidden")

    def parse(self, request: FakeRequest) -> Submission | FakeResponse:
        fields = _form_fields(request)
        if fields is None:
            return _bad_request("Content-Type must be form data")
        single = {k: v for k, v in reversed(fields)}
        to = addresses([str(v) for k, v in fields if k == "to"])
        problem = _missing(single, to)
        if problem:
            return _bad_request(problem)
        message = _Message(fields, single)
        if self.context.recorder.details and not message.parse_variables():
            return _bad_request("recipient-variables parameter is not a valid JSON")
        return Submission(to, state=message)

    def accept(
        self, submission: Submission, failing: Mapping[str, Fault]
    ) -> tuple[list[Copy], FakeResponse]:
        message: _Message = submission.state
        message_id = f"{int(timestamp() * 1000)}.{id(message):x}@{self.credentials.mailgun_domain}"
        body = {"id": f"<{message_id}>", "message": "Queued. Thank you."}
        if not self.context.recorder.details:
            self.context.recorder.tally(self.name, submission.recipients)
            return [], FakeResponse.json(200, body)
        copies = [
            Copy(self.name, to, "", message.metadata(to), message_id, message.renderer(to))
            for to in submission.recipients
        ]
        return copies, FakeResponse.json(200, body)

    def events(self, request: FakeRequest) -> FakeResponse:
        refused = self.authenticate(request)
        if refused is not None:
            return refused
        query, offset = _events_query(request)
        limit = min(int(query.get("limit") or 100), 300)
        matching = [c for c in self.context.recorder.copies(self.name) if _wanted(c, query)]
        if query.get("ascending") != "yes":  # newest first, unless asked otherwise
            matching.reverse()
        page = matching[offset:offset + limit]
        token = _token({"query": query, "offset": offset + len(page)})
        domain = request.path.split("/")[2]
        next_url = f"http://{request.host}/v3/{domain}/events/{token}"
        return FakeResponse.json(200, {
            "items": [_event(c) for c in page],
            "paging": {"next": next_url, "previous": next_url},
        })


class _Message:
    """One parsed send request; copies render from it on demand."""

    def __init__(self, fields: Sequence[tuple[str, _Value]], single: Mapping[str, _Value]) -> None:
        self.single = single
        self.variables: dict[str, Any] = {}
        self.headers = {k[2:]: str(v) for k, v in fields if k.startswith("h:")}
        self.user_variables = {k[2:]: str(v) for k, v in fields if k.startswith("v:")}

    def parse_variables(self) -> bool:
        try:
            variables = json.loads(str(self.single.get("recipient-variables") or "{}"))
        except ValueError:
            return False
        self.variables = {str(k).lower(): v for k, v in variables.items()}
        return True

    def lookup(self, to: str) -> Callable[[str], str | None]:
        values = self.variables.get(to.lower(), {})
        return lambda name: None if name not in values else str(values[name])

    def metadata(self, to: str) -> dict[str, str]:
        lookup = self.lookup(to)
        return {k: substitute(v, RECIPIENT_VARIABLE, lookup)
                for k, v in self.user_variables.items()}

    def renderer(self, to: str) -> Callable[[], Rendered]:
        return partial(self.render, to)  # made per recipient: a partial costs less than a lambda

    def render(self, to: str) -> Rendered:
        lookup = self.lookup(to)
        headers = {k: substitute(v, RECIPIENT_VARIABLE, lookup) for k, v in self.headers.items()}
        part = {k: str(self.single.get(k, "")) for k in ("subject", "html", "text")}
        return Rendered(
            subject=substitute(part["subject"], RECIPIENT_VARIABLE, lookup),
            html=substitute(part["html"], RECIPIENT_VARIABLE, lookup),
            text=substitute(part["text"], RECIPIENT_VARIABLE, lookup),
            list_unsubscribe=headers.get("List-Unsubscribe", ""),
            headers=headers,
        )


def _basic_credentials(request: FakeRequest) -> str:
    scheme, _, encoded = request.header("authorization").partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        return base64.b64decode(encoded).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""


def _domain(path: str) -> str:
    parts = path.split("/")
    return parts[2] if len(parts) > 2 else ""


class _Value:
    """A form value decoded on first use: a 1,000-recipient body is mostly HTML and
    recipient variables that a counts-only run never needs to read."""

    __slots__ = ("_decoded", "_encoded", "_raw")

    def __init__(self, raw: bytes, *, encoded: bool = True) -> None:
        self._raw = raw
        self._encoded = encoded  # percent-encoded (urlencoded forms) or raw (multipart)
        self._decoded: str | None = None

    def __bool__(self) -> bool:
        return bool(self._raw)

    def __str__(self) -> str:
        if self._decoded is None:
            raw = self._raw
            plain = not self._encoded or (b"%" not in raw and b"+" not in raw)
            self._decoded = raw.decode() if plain else unquote_to_bytes(
                raw.replace(b"+", b" ")).decode()
        return self._decoded


def _form_fields(request: FakeRequest) -> list[tuple[str, _Value]] | None:
    content_type = request.header("content-type")
    if content_type.startswith("application/x-www-form-urlencoded"):
        pairs = (part.partition(b"=") for part in request.body.split(b"&") if part)
        return [(str(_Value(name)), _Value(value)) for name, _, value in pairs]
    if content_type.startswith("multipart/form-data"):
        return _multipart_fields(content_type, request.body)
    return None


def _multipart_fields(content_type: str, body: bytes) -> list[tuple[str, _Value]]:
    """Parts in order, with python-multipart (the email package takes ~60x longer)."""
    _, options = parse_options_header(content_type)
    fields: list[tuple[str, _Value]] = []
    current: dict[str, list[bytes]] = {}

    def begin() -> None:
        current.clear()
        current.update(field=[], value=[], data=[])

    def header_field(data: bytes, start: int, end: int) -> None:
        current["field"].append(data[start:end])

    def header_value(data: bytes, start: int, end: int) -> None:
        if b"".join(current["field"]).lower() == b"content-disposition":
            current["value"].append(data[start:end])
        current["field"] = []

    def part_data(data: bytes, start: int, end: int) -> None:
        current["data"].append(data[start:end])

    def end() -> None:
        _, params = parse_options_header(b"".join(current["value"]))
        name = params.get(b"name", b"").decode("utf-8")
        fields.append((name, _Value(b"".join(current["data"]), encoded=False)))

    parser = MultipartParser(options[b"boundary"], callbacks={
        "on_part_begin": begin, "on_header_field": header_field,
        "on_header_value": header_value, "on_part_data": part_data, "on_part_end": end,
    })
    parser.write(body)
    parser.finalize()
    return fields


def _missing(single: Mapping[str, _Value], to: Sequence[str]) -> str:
    if not single.get("from"):
        return "from parameter is missing"
    if not to:
        return "to parameter is missing"
    if len(to) > MAX_RECIPIENTS:
        return f"Too many recipients: a batch takes at most {MAX_RECIPIENTS}"
    if not single.get("subject"):
        return "subject parameter is missing"
    if not any(single.get(k) for k in ("text", "html", "template")):
        return "Need at least one of 'text', 'html' or 'template' parameters specified"
    return ""


def _bad_request(message: str) -> FakeResponse:
    return FakeResponse.json(400, {"message": message})


def _events_query(request: FakeRequest) -> tuple[dict[str, str], int]:
    token = request.path.rsplit("/", 1)[-1]
    if token != "events":
        state = json.loads(base64.urlsafe_b64decode(token.encode()))
        return dict(state["query"]), int(state["offset"])
    return {k: v[0] for k, v in request.query.items()}, 0


def _token(state: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode()


def _wanted(copy: Copy, query: Mapping[str, str]) -> bool:
    events = {e.strip() for e in query.get("event", "accepted").split(" OR ")}
    if "accepted" not in events:
        return False
    if query.get("begin") and copy.at < float(query["begin"]):
        return False
    if query.get("recipient") and query["recipient"].lower() != copy.recipient.lower():
        return False
    wanted = json.loads(query.get("user-variables") or "{}")
    return all(copy.metadata.get(k) == str(v) for k, v in wanted.items())


def _event(copy: Copy) -> dict[str, Any]:
    return {
        "event": "accepted",
        "recipient": copy.recipient,
        "timestamp": copy.at,
        "user-variables": dict(copy.metadata),
        "message": {"headers": {"message-id": copy.message_id, "to": copy.recipient,
                                "subject": copy.content.subject}},
    }

