"""What every fake provider shares: requests, answers, faults, the record, idempotency.

A fake API only parses and validates its provider's request format and shapes its answers;
``Pipeline`` runs the steps a real provider takes in the order it takes them: check the
credentials, validate the body, maybe fail (injected faults), deduplicate by idempotency
key, accept and record each copy, answer.
"""

from __future__ import annotations

import hashlib
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from ...errors import ConfigError


@dataclass(frozen=True, slots=True)
class Credentials:
    """The keys the fake accepts; anything else gets the provider's own auth error."""

    mailgun_api_key: str = "mg-test-key"
    mailgun_domain: str = "mg.example.org"
    postmark_server_token: str = "pm-test-token"
    sendgrid_api_key: str = "SG.test-key"
    resend_api_key: str = "re_test_key"
    ses_region: str = "eu-west-1"
    ses_access_key_id: str = "AKIAFAKEPROVIDER"
    ses_secret_access_key: str = "fake-provider-secret-key"
    brevo_api_key: str = "xkeysib-test-key"


@dataclass(slots=True)
class FakeRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    host: str = ""

    def header(self, name: str) -> str:
        return self.headers.get(name, "") or ""

    def param(self, name: str) -> str:
        values = self.query.get(name)
        return values[0] if values else ""


@dataclass(slots=True)
class FakeResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, data: Any, headers: Mapping[str, str] | None = None) -> FakeResponse:
        import json

        body = json.dumps(data, ensure_ascii=False).encode()
        return cls(status, body, {"Content-Type": "application/json", **(headers or {})})

    @classmethod
    def text(cls, status: int, text: str) -> FakeResponse:
        return cls(status, text.encode(), {"Content-Type": "text/plain; charset=utf-8"})


class FaultKind(StrEnum):
    RATE_LIMIT = "rate-limit"  # the provider's 429, with Retry-After
    SERVER_ERROR = "server-error"  # 500
    UNAUTHORIZED = "unauthorized"  # the provider's own 401/403 answer
    SLOW = "slow"  # accepted and recorded, answered only after ``delay`` seconds
    RESET = "reset"  # accepted and recorded, then the connection is reset
    CLOSE = "close"  # accepted and recorded, then the connection is closed unanswered
    RECIPIENT = "recipient"  # a 2xx answer with an error for the matching recipient


#: Faults that happen after the provider accepted (and would deliver) the request.
AFTER_ACCEPT = frozenset({FaultKind.SLOW, FaultKind.RESET, FaultKind.CLOSE})


@dataclass(slots=True)
class Fault:
    """One injected failure. Without ``nth`` or ``recipient`` it hits the next request.

    ``nth`` counts this provider's send requests from 1; ``recipient`` matches a request
    (or, for ``RECIPIENT``, an item) naming that address. ``code`` picks the per-recipient
    error: a Postmark ``ErrorCode`` (default 406) or an SES entry ``Status``.
    """

    kind: FaultKind
    nth: int | None = None
    recipient: str | None = None
    times: int = 1
    retry_after: float = 1.0
    delay: float = 5.0
    code: str = ""

    def matches(self, request_no: int, recipients: frozenset[str]) -> bool:
        if self.nth is not None and self.nth != request_no:
            return False
        return self.recipient is None or self.recipient.lower() in recipients

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fault:
        try:
            known = {k: data[k] for k in ("nth", "recipient", "times", "retry_after",
                                           "delay", "code") if k in data}
            return cls(kind=FaultKind(data["kind"]), **known)
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigError(f"fault {dict(data)!r}: {exc}") from exc


class FaultBook:
    """Faults waiting to fire, per provider; thread-safe and cheap when empty."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, list[Fault]] = {}

    def push(self, provider: str, fault: Fault) -> None:
        with self._lock:
            self._faults.setdefault(provider, []).append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending(self, provider: str) -> bool:
        return bool(self._faults.get(provider))

    def take_request_fault(
        self, provider: str, request_no: int, recipients: frozenset[str]
    ) -> Fault | None:
        taken = self._take(provider, lambda f: f.kind is not FaultKind.RECIPIENT
                           and f.matches(request_no, recipients))
        return taken[0] if taken else None

    def take_recipient_faults(
        self, provider: str, request_no: int, recipients: frozenset[str]
    ) -> dict[str, Fault]:
        taken = self._take(provider, lambda f: f.kind is FaultKind.RECIPIENT
                           and f.recipient is not None and f.matches(request_no, recipients),
                           every=True)
        return {str(f.recipient).lower(): f for f in taken}

    def _take(
        self, provider: str, wanted: Callable[[Fault], bool], every: bool = False
    ) -> list[Fault]:
        with self._lock:
            faults = self._faults.get(provider, [])
            taken = []
            for fault in list(faults):
                if wanted(fault):
                    taken.append(fault)
                    fault.times -= 1
                    if fault.times <= 0:
                        faults.remove(fault)
                    if not every:
                        break
            return taken


@dataclass(slots=True)
class Copy:
    """What one recipient received. Bodies are rendered on first access, so recording a
    1,000-recipient batch stores references, not 1,000 merged documents."""

    provider: str
    recipient: str
    idempotency_key: str
    metadata: Mapping[str, str]
    message_id: str
    render: Callable[[], Rendered]
    _rendered: Rendered | None = None
    #: When it was accepted (epoch seconds), for the query APIs' time ranges.
    at: float = field(default_factory=time.time)
    #: The provider's own channel it went through, where it has several (Postmark's
    #: message streams); empty where it has one.
    channel: str = ""

    @property
    def content(self) -> Rendered:
        if self._rendered is None:
            self._rendered = self.render()
        return self._rendered

    def to_json(self, copies: int) -> dict[str, Any]:
        return {
            "provider": self.provider, "recipient": self.recipient, "copies": copies,
            "idempotency_key": self.idempotency_key, "metadata": dict(self.metadata),
            "message_id": self.message_id, "channel": self.channel, **asdict(self.content),
        }


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    html: str
    text: str
    list_unsubscribe: str
    headers: Mapping[str, str] = field(default_factory=dict)


class Recorder:
    """Every accepted copy: a count per recipient and the details of the last copy.

    With ``details=False`` only the counts are kept, for runs of millions of recipients.
    """

    def __init__(self, details: bool = True) -> None:
        self.details = details
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.counts: Counter[tuple[str, str]] = Counter()
        self.last: dict[tuple[str, str], Copy] = {}

    def next_request(self, provider: str) -> int:
        with self._lock:
            self.requests[provider] += 1
            return self.requests[provider]

    def add(self, copies: Sequence[Copy]) -> None:
        with self._lock:
            for copy in copies:
                key = (copy.provider, copy.recipient.lower())
                self.counts[key] += 1
                if self.details:
                    self.last[key] = copy

    def tally(self, provider: str, recipients: Iterable[str]) -> None:
        """Count copies without keeping them (a counts-only run; ``Counter.update`` is C)."""
        keys = [(provider, r.lower()) for r in recipients]
        with self._lock:
            self.counts.update(keys)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.counts.clear()
            self.last.clear()

    def copies(self, provider: str | None = None) -> list[Copy]:
        with self._lock:
            return [c for (p, _), c in self.last.items() if provider in (None, p)]

    def count(self, provider: str, recipient: str) -> int:
        return self.counts[(provider, recipient.lower())]

    def summary(self) -> dict[str, Any]:
        with self._lock:
            accepted: Counter[str] = Counter()
            duplicates: Counter[str] = Counter()
            for (provider, _), n in self.counts.items():
                accepted[provider] += n
                duplicates[provider] += n > 1
            return {"requests": dict(self.requests), "accepted": dict(accepted),
                    "recipients_with_duplicates": dict(duplicates)}

    def to_json(self, provider: str | None = None) -> dict[str, Any]:
        copies = [c.to_json(self.count(c.provider, c.recipient)) for c in self.copies(provider)]
        return {**self.summary(), "copies": copies}


class Idempotency(StrEnum):
    NEW = "new"
    REPLAY = "replay"
    CONFLICT = "conflict"
    IN_FLIGHT = "in-flight"


class IdempotencyStore:
    """Answers remembered per (provider, key), as Resend and Brevo keep them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: dict[tuple[str, str], tuple[str, FakeResponse]] = {}
        self._running: set[tuple[str, str]] = set()

    def begin(
        self, provider: str, key: str, body: bytes
    ) -> tuple[Idempotency, FakeResponse | None]:
        digest = hashlib.sha256(body).hexdigest()
        with self._lock:
            if (provider, key) in self._running:
                return Idempotency.IN_FLIGHT, None
            done = self._done.get((provider, key))
            if done is None:
                self._running.add((provider, key))
                return Idempotency.NEW, None
            if done[0] != digest:
                return Idempotency.CONFLICT, done[1]
            return Idempotency.REPLAY, done[1]

    def finish(self, provider: str, key: str, body: bytes, response: FakeResponse | None) -> None:
        """Remember a success; after a failure the key may be used again."""
        with self._lock:
            self._running.discard((provider, key))
            if response is not None:
                self._done[(provider, key)] = (hashlib.sha256(body).hexdigest(), response)

    def reset(self) -> None:
        with self._lock:
            self._done.clear()
            self._running.clear()


@dataclass(slots=True)
class Submission:
    """A valid send request, parsed: who it goes to and how each copy reads."""

    recipients: Sequence[str]
    idempotency_key: str = ""
    state: Any = None

    @property
    def recipient_set(self) -> frozenset[str]:
        return frozenset(r.lower() for r in self.recipients)


@dataclass(slots=True)
class Outcome:
    """The answer to write, and a fault to apply to the connection instead of (or before) it."""

    response: FakeResponse
    fault: Fault | None = None


@dataclass(slots=True)
class Context:
    credentials: Credentials
    recorder: Recorder
    faults: FaultBook
    idempotency: IdempotencyStore


class FakeApi(ABC):
    """One provider's send contract. Subclasses never touch sockets."""

    name: str
    #: ``(method, path regex, handler)``: extra read endpoints (events, message search).
    queries: Sequence[tuple[str, str, str]] = ()
    #: Brevo ignores a reused key whatever the body; Resend refuses a different body.
    replay_on_conflict: bool = False

    def __init__(self, context: Context) -> None:
        self.context = context
        self.credentials = context.credentials

    @abstractmethod
    def send_path(self, path: str) -> bool:
        """Whether ``path`` is this provider's send endpoint."""

    @abstractmethod
    def authenticate(self, request: FakeRequest) -> FakeResponse | None:
        """The provider's auth error, or None when the credentials are right."""

    @abstractmethod
    def unauthorized(self) -> FakeResponse:
        """The answer to a refused key (also used by the ``UNAUTHORIZED`` fault)."""

    @abstractmethod
    def parse(self, request: FakeRequest) -> Submission | FakeResponse:
        """A valid submission, or the provider's validation error."""

    @abstractmethod
    def accept(
        self, submission: Submission, failing: Mapping[str, Fault]
    ) -> tuple[list[Copy], FakeResponse]:
        """The copies delivered and the success answer; ``failing`` recipients are refused."""

    def rate_limited(self, retry_after: float) -> FakeResponse:
        return FakeResponse.json(429, {"message": "Too many requests"},
                                 {"Retry-After": f"{retry_after:g}"})

    def server_error(self) -> FakeResponse:
        return FakeResponse.json(500, {"message": "Internal server error"})

    def idempotency_conflict(self, state: Idempotency) -> FakeResponse:
        return FakeResponse.json(409, {"message": f"idempotency key {state}"})


class Pipeline:
    """The order in which a real provider handles a send request."""

    def __init__(self, context: Context) -> None:
        self.context = context

    def run(self, api: FakeApi, request: FakeRequest) -> Outcome:
        refused = api.authenticate(request)
        if refused is not None:
            return Outcome(refused)
        parsed = api.parse(request)
        if isinstance(parsed, FakeResponse):
            return Outcome(parsed)
        request_no = self.context.recorder.next_request(api.name)
        fault = self._request_fault(api.name, request_no, parsed)
        if fault is not None and fault.kind not in AFTER_ACCEPT:
            return Outcome(_fault_response(api, fault))
        return Outcome(self._accept(api, request, parsed, request_no), fault)

    def _request_fault(self, provider: str, request_no: int, parsed: Submission) -> Fault | None:
        if not self.context.faults.pending(provider):
            return None
        return self.context.faults.take_request_fault(provider, request_no, parsed.recipient_set)

    def _accept(
        self, api: FakeApi, request: FakeRequest, parsed: Submission, request_no: int
    ) -> FakeResponse:
        key = parsed.idempotency_key
        if not key:
            return self._deliver(api, parsed, request_no)
        store = self.context.idempotency
        state, earlier = store.begin(api.name, key, request.body)
        replay = state is Idempotency.REPLAY or (
            state is Idempotency.CONFLICT and api.replay_on_conflict
        )
        if replay and earlier is not None:
            return earlier
        if state is not Idempotency.NEW:
            return api.idempotency_conflict(state)
        response = None
        try:
            response = self._deliver(api, parsed, request_no)
        finally:
            store.finish(api.name, key, request.body, response if _ok(response) else None)
        return response

    def _deliver(self, api: FakeApi, parsed: Submission, request_no: int) -> FakeResponse:
        failing: dict[str, Fault] = {}
        if self.context.faults.pending(api.name):
            failing = self.context.faults.take_recipient_faults(
                api.name, request_no, parsed.recipient_set
            )
        copies, response = api.accept(parsed, failing)
        self.context.recorder.add(copies)
        return response


def _ok(response: FakeResponse | None) -> bool:
    return response is not None and 200 <= response.status < 300


def _fault_response(api: FakeApi, fault: Fault) -> FakeResponse:
    if fault.kind is FaultKind.RATE_LIMIT:
        return api.rate_limited(fault.retry_after)
    if fault.kind is FaultKind.UNAUTHORIZED:
        return api.unauthorized()
    return api.server_error()


def lowered(addresses: Iterable[str]) -> list[str]:
    return [a.strip().lower() for a in addresses]
