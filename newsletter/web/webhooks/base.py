"""What every provider's webhook receiver shares: the normalised event, the errors, the checks.

A receiver first *authenticates* the raw request (signature, shared credentials, freshness)
and only then *parses* it into ``WebhookEvent`` values in the ``DeliveryStatus`` vocabulary.
Nothing is written until both succeeded; the web layer applies the events in one transaction.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import orjson

from ...config import Secret, Settings
from ...errors import NewsletterError
from ...models import WebhookEvent

#: How old a signed timestamp may be; providers retry, so a request is not refused for being late
#: by a few seconds, but a captured one cannot be replayed much later.
MAX_AGE = timedelta(minutes=5)
#: Clocks drift: a timestamp this far ahead of ours is still believed.
MAX_SKEW = timedelta(minutes=1)
#: Providers' events nest a few levels deep; anything deeper is refused before it is walked
#: (the digest of an event, ``payload_id``, recurses through it).
MAX_JSON_DEPTH = 32

Clock = Callable[[], datetime]
Headers = Mapping[str, str]


class WebhookError(NewsletterError):
    """A webhook request was refused; ``status`` is the HTTP answer it gets."""

    status: ClassVar[int] = 400


class WebhookAuthError(WebhookError):
    """The request cannot be shown to come from the provider: bad or stale signature, replay."""

    status = 403


class WebhookCredentialsError(WebhookAuthError):
    """HTTP Basic credentials missing or wrong; answered with a challenge."""

    status = 401


class WebhookPayloadError(WebhookError, ValueError):
    """The request is authentic but its body is not what the provider documents."""

    status = 400


class WebhookUnavailableError(WebhookError):
    """Something needed to verify the request (a signing certificate) could not be fetched."""

    status = 503




@dataclass(frozen=True, slots=True)
class Received:
    """What an authentic request carried; ``replay_token`` must not have been seen before."""

    events: tuple[WebhookEvent, ...]
    replay_token: str = ""


class Receiver(ABC):
    """Verifies and parses one provider's webhook requests."""

    name: ClassVar[str]

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock

    def receive(self, headers: Headers, body: bytes) -> Received:
        """Authenticate, then parse; raises a ``WebhookError`` subclass on refusal."""
        token = self.authenticate(headers, body)
        received = Received(tuple(self.parse(headers, body)), token)
        _check_storable(received)
        return received

    @abstractmethod
    def authenticate(self, headers: Headers, body: bytes) -> str:
        """Raise ``WebhookAuthError`` unless the request is the provider's.

        Returns a one-time token to record against replays, or "" when the provider has none.
        """

    @abstractmethod
    def parse(self, headers: Headers, body: bytes) -> list[WebhookEvent]:
        """The events of an authenticated body; ``WebhookPayloadError`` if it is malformed."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


# -- checks shared by several providers ---------------------------------------------------


def check_timestamp(sent_at: datetime, now: datetime) -> None:
    """Refuse a signed timestamp that is too old, or too far in the future, to be this request's."""
    if sent_at < now - MAX_AGE:
        raise WebhookAuthError("signature timestamp is too old")
    if sent_at > now + MAX_SKEW:
        raise WebhookAuthError("signature timestamp is in the future")


def check_basic_auth(headers: Headers, user: str, password: Secret, provider: str) -> None:
    """Compare HTTP Basic credentials in constant time; refuse everything when none are set."""
    if not user or not password:
        raise WebhookAuthError(f"{provider} webhook credentials are not configured")
    given_user, given_password = _basic_credentials(headers.get("authorization", ""))
    user_ok = secrets.compare_digest(given_user.encode(), user.encode())
    password_ok = secrets.compare_digest(given_password.encode(), password.reveal().encode())
    if not (user_ok and password_ok):
        raise WebhookCredentialsError("wrong or missing credentials")


def _basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    user, _, password = decoded.partition(":")
    return user, password


# -- parsing helpers ----------------------------------------------------------------------


def load_json(body: bytes | str, what: str = "request body") -> Any:
    """The JSON document of ``body``, at most ``MAX_JSON_DEPTH`` levels deep.

    orjson rather than the json module: it stops at 1,024 levels with a ``ValueError``, where
    the json module recurses until Python's ``RecursionError``, and is strict about UTF-8.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise WebhookPayloadError(f"{what} is not valid JSON: {exc}") from exc
    if _depth_exceeds(document, MAX_JSON_DEPTH):
        raise WebhookPayloadError(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
    return document


def _depth_exceeds(document: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` levels; iterative, so it cannot
    run out of stack itself."""
    pending: list[tuple[Any, int]] = [(document, 0)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict | list):
            if depth == limit:
                return True
            children = value.values() if isinstance(value, dict) else value
            pending.extend((child, depth + 1) for child in children)
    return False


def _check_storable(received: Received) -> None:
    """Refuse text the database cannot store: PostgreSQL's text columns take no NUL."""
    texts = [received.replay_token]
    for event in received.events:
        texts += [event.event_id, event.email, event.provider_message_id, event.detail]
    if any("\x00" in text for text in texts):
        raise WebhookPayloadError("an event field contains a NUL character")


def as_items(document: Any, what: str = "request body") -> list[Mapping[str, Any]]:
    """A body that may hold one event object or an array of them, as a list of objects."""
    items = document if isinstance(document, list) else [document]
    if not all(isinstance(item, Mapping) for item in items):
        raise WebhookPayloadError(f"{what}: expected an event object or an array of them")
    return items


def field(item: Mapping[str, Any], *path: str) -> Any:
    """``item[path[0]][path[1]]…``; a missing level is a payload error naming the path."""
    value: Any = item
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            raise WebhookPayloadError(f"event has no {'.'.join(path)!r}")
        value = value[key]
    return value


def text_field(item: Mapping[str, Any], *path: str) -> str:
    value = field(item, *path)
    if not isinstance(value, str):
        raise WebhookPayloadError(f"event field {'.'.join(path)!r} is not a string")
    return value


def payload_id(item: Mapping[str, Any]) -> str:
    """A stable id for an event its provider does not number: the digest of its content."""
    canonical = json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def from_epoch(value: Any, *, milliseconds: bool = False) -> datetime:
    try:
        seconds = float(value) / (1000 if milliseconds else 1)
        return datetime.fromtimestamp(seconds, UTC)
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise WebhookPayloadError(f"bad timestamp {value!r}") from exc


def from_iso(value: Any) -> datetime:
    """An ISO 8601 instant (``Z`` accepted); naive values are taken as UTC."""
    if not isinstance(value, str):
        raise WebhookPayloadError(f"bad timestamp {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise WebhookPayloadError(f"bad timestamp {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def bare_message_id(value: Any) -> str:
    """Message ids without the angle brackets some providers put around them and others omit."""
    return str(value or "").strip().strip("<>").strip()
