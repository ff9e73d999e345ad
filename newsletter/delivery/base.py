"""The provider seam: what every delivery provider is given and what it answers.

A provider only *builds* a request for one batch and *parses* the answer. The send loop —
ledger commits, retries with backoff, rate limits, pausing on auth errors — lives in
``delivery.engine`` and is the same for every provider. HTTP providers subclass
``HttpProvider``: ``build_request`` is pure (testable without a network) and ``send_batch``
translates ``requests`` exceptions into this package's errors at one place.
"""

from __future__ import annotations

import email.utils
import logging
import math
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, ClassVar, NamedTuple, overload

import orjson
import requests

from ..config import Settings
from ..errors import (
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    TransientProviderError,
    UnknownOutcomeError,
)
from ..models import DeliveryStatus, SuppressionReason
from ..render.merge import MergeTemplate
from .advice import unreachable

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PreparedIssue:
    """An issue rendered once, ready to be merged for any recipient.

    ``subject``, ``html``, ``text`` and ``list_unsubscribe`` may hold merge markers; the
    values for a recipient come from ``BatchRecipient.values``.
    """

    issue_id: int
    list_id: str
    list_id_header: str  # RFC 2919 value, e.g. "Weekly digest <weekly.news.example.org>"
    from_email: str
    from_name: str
    reply_to: str
    subject: MergeTemplate
    html: MergeTemplate
    text: MergeTemplate
    list_unsubscribe: MergeTemplate
    message_id_domain: str
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    tag: str = ""
    is_test: bool = False
    #: One message a reader asked for (a sign-up's confirmation, a welcome), not bulk mail:
    #: a provider that keeps the two apart sends it where it keeps such messages.
    transactional: bool = False

    @property
    def from_header(self) -> str:
        return email.utils.formataddr((self.from_name, self.from_email))

    #: Fields used unescaped (subject, text part, headers); computed once, used per recipient.
    plain_fields: frozenset[str] = field(init=False, repr=False, compare=False)
    #: Every field any part refers to.
    field_names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        plain = self.subject.field_names | self.text.field_names | self.list_unsubscribe.field_names
        object.__setattr__(self, "plain_fields", plain)
        object.__setattr__(self, "field_names", plain | self.html.field_names)

    @property
    def member_fields(self) -> frozenset[str]:
        """The member file columns the templates refer to (as ``f_column``)."""
        return frozenset(name[2:] for name in self.field_names if name.startswith("f_"))

    @property
    def uses_member_fields(self) -> bool:
        return bool(self.member_fields)

    def shared_headers(self) -> dict[str, str]:
        """The list headers that are the same in every copy (all but List-Unsubscribe)."""
        headers = {
            "List-Id": self.list_id_header,
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        headers.update(self.extra_headers)
        return headers

    def headers_for(self, values: Mapping[str, str]) -> dict[str, str]:
        """The list headers of one copy (RFC 2369, RFC 2919, RFC 8058)."""
        return {"List-Unsubscribe": self.list_unsubscribe.render(values), **self.shared_headers()}

    def merge(self, values: Mapping[str, str]) -> MergedCopy:
        return MergedCopy(
            subject=self.subject.render(values),
            html=self.html.render(values),
            text=self.text.render(values),
            headers=self.headers_for(values),
        )


@dataclass(frozen=True, slots=True)
class MergedCopy:
    """One recipient's finished copy: what local-merge providers send."""

    subject: str
    html: str
    text: str
    headers: Mapping[str, str]


class BatchRecipient(NamedTuple):
    """One ledger row handed to a provider (a tuple: a send makes one per recipient)."""

    recipient_id: int
    email: str
    name: str
    values: Mapping[str, str]

    @property
    def to_header(self) -> str:
        return to_header(self.name, self.email)


@dataclass(frozen=True, slots=True)
class OutgoingBatch:
    batch_id: int
    seq: int
    idempotency_key: str
    recipients: Sequence[BatchRecipient]
    #: Epoch seconds before which this batch was never sent (0: not known). Lets a
    #: reconciliation search the provider's log from then on instead of from the newest.
    sent_after: float = 0.0


class RecipientResult(NamedTuple):
    """What the provider said about one recipient of a batch (a tuple, made per recipient)."""

    email: str
    status: DeliveryStatus
    message_id: str = ""
    error: str = ""
    retryable: bool = False
    suppress: SuppressionReason | None = None


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The provider's answer for a whole batch: one result per recipient, in any order."""

    results: Sequence[RecipientResult]
    provider_batch_id: str = ""
    #: Made by ``all_sent``: the provider took the whole batch, so nothing needs checking.
    whole: bool = False

    def uniformly_sent(self, batch: OutgoingBatch) -> bool:
        """Every recipient reported sent under one message id (one provider id per batch)."""
        if self.whole:
            return True
        items = self.results
        if len(items) != len(batch.recipients) or not items:
            return False
        first = items[0].message_id
        if any(r.status != DeliveryStatus.SENT or r.message_id != first for r in items):
            return False
        return {r.email.lower() for r in items} == {r.email.lower() for r in batch.recipients}

    def unreported(self, batch: OutgoingBatch) -> list[int]:
        """Ledger ids of recipients the answer did not mention: never assume those were sent."""
        seen = {r.email.lower() for r in self.results}
        return [r.recipient_id for r in batch.recipients if r.email.lower() not in seen]

    @classmethod
    def all_sent(cls, batch: OutgoingBatch, message_id: str = "") -> BatchResult:
        return cls(_SentToAll(batch.recipients, message_id), message_id, whole=True)


class _SentToAll(Sequence[RecipientResult]):
    """Every recipient of a batch sent under one id, made only when asked for: a batch sent
    whole is recorded on the batch alone, and a thousand tuples per batch went unread."""

    def __init__(self, recipients: Sequence[BatchRecipient], message_id: str) -> None:
        self._recipients = recipients
        self._message_id = message_id

    def __len__(self) -> int:
        return len(self._recipients)

    @overload
    def __getitem__(self, index: int) -> RecipientResult: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[RecipientResult]: ...

    def __getitem__(self, index: int | slice) -> RecipientResult | Sequence[RecipientResult]:
        if isinstance(index, slice):
            return [self._result(r) for r in self._recipients[index]]
        return self._result(self._recipients[index])

    def _result(self, recipient: BatchRecipient) -> RecipientResult:
        return RecipientResult(recipient.email, DeliveryStatus.SENT, self._message_id)


#: What makes ``formataddr`` quote, escape or encode a display name (RFC 5322 specials).
_NAME_SPECIALS = re.compile(r'[][\\()<>@,:;".]')


def to_header(name: str, address: str) -> str:
    """``email.utils.formataddr((name, address))``, a third of its cost for the usual plain
    ASCII name (a send formats one per recipient); any other name goes to ``formataddr``."""
    if not name:
        return email.utils.formataddr((name, address))
    if name.isascii() and address.isascii() and not _NAME_SPECIALS.search(name):
        return f"{name} <{address}>"
    return email.utils.formataddr((name, address))


def to_headers(recipients: Sequence[BatchRecipient]) -> list[str]:
    """Each recipient's ``to_header``. A batch whose names are all plain ASCII (the usual
    case) is checked once, its names joined, rather than name by name."""
    names = [r.name for r in recipients]
    joined = "".join(names)
    plain = "" not in names and joined.isascii() and not _NAME_SPECIALS.search(joined)
    if not plain or not "".join([r.email for r in recipients]).isascii():
        return [r.to_header for r in recipients]
    return [f"{r.name} <{r.email}>" for r in recipients]


class Provider(ABC):
    """A way to deliver batches. Subclasses declare their batch size and idempotency."""

    name: ClassVar[str]
    max_batch: ClassVar[int] = 100
    #: A resent batch with the same idempotency key is not delivered twice.
    idempotent: ClassVar[bool] = False
    #: The account limits the provider documents for every account, applied unless the
    #: publisher sets NEWSLETTER_RATE_REQUESTS / NEWSLETTER_RATE_MESSAGES (0 = no limit).
    default_requests_per_second: ClassVar[float] = 0.0
    default_messages_per_second: ClassVar[float] = 0.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @abstractmethod
    def send_batch(self, issue: PreparedIssue, batch: OutgoingBatch) -> BatchResult:
        """Deliver one batch, or raise a ``ProviderError`` subclass."""

    def reconcile(self, issue: PreparedIssue, batch: OutgoingBatch) -> BatchResult | None:
        """For a batch of unknown outcome: ask the provider what happened, if it can say."""
        return None

    def close(self) -> None:  # noqa: B027 - most providers hold nothing
        """Release connections."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A request ready to send; building it needs no network, so it is tested on its own."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    data: Any = None
    files: Any = None
    auth: tuple[str, str] | None = None

    def __repr__(self) -> str:  # never show credentials or bodies in logs
        return f"HttpRequest({self.method} {self.url})"

    def body(self) -> tuple[dict[str, str], Any]:
        """The headers and the body as sent. JSON is encoded by orjson rather than by
        ``requests`` (the json module): a 500-message Postmark batch of merged HTML
        is several megabytes to encode."""
        headers = dict(self.headers)
        if self.json is None:
            return headers, self.data
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
        return headers, orjson.dumps(self.json)


#: The longest ``Retry-After`` taken at its word; a longer one is read as this.
LONGEST_RETRY_AFTER = 86_400.0


def retry_after_seconds(response: requests.Response) -> float | None:
    """Seconds to wait from ``Retry-After`` (RFC 9110: a number of seconds or an HTTP date);
    None when there is none, or it cannot be read (the usual backoff applies then)."""
    raw = response.headers.get("Retry-After", "").strip()
    if not raw:
        return None
    seconds: float | None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = _seconds_until(raw)
    return bounded_wait(seconds)


def bounded_wait(seconds: float | None) -> float | None:
    """A provider's wait as one to honour: at least 0, at most ``LONGEST_RETRY_AFTER``;
    None for none, or for one that is not a number (NaN, infinite)."""
    if seconds is None or not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), LONGEST_RETRY_AFTER)


def _seconds_until(http_date: str) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, origin unknown (RFC 5322)
        when = when.replace(tzinfo=UTC)
    return (when - datetime.now(UTC)).total_seconds()


class HttpProvider(Provider):
    """Base of the providers reached over HTTP with ``requests``."""

    base_url: str = ""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._local = threading.local()

    # -- for subclasses -------------------------------------------------------------------
    @abstractmethod
    def build_request(self, issue: PreparedIssue, batch: OutgoingBatch) -> HttpRequest:
        """The request that delivers ``batch``: pure, no I/O."""

    @abstractmethod
    def parse_response(self, batch: OutgoingBatch, response: requests.Response) -> BatchResult:
        """Per-recipient results from a 2xx answer."""

    def raise_for_error(self, response: requests.Response) -> None:
        """Turn a non-2xx answer into the right error; providers refine it for their quirks."""
        status = response.status_code
        if status < 300:
            return
        if status in (401, 402, 403):
            kind: type[ProviderError] = ProviderAuthError
        elif status in (408, 429) or status >= 500:
            kind = TransientProviderError
        else:
            kind = PermanentProviderError
        raise kind(
            error_message(response),
            provider=self.name,
            status=status,
            body=response.text,
            retry_after=self.wait_asked(response),
        )

    def wait_asked(self, response: requests.Response) -> float | None:
        """How long the provider asked to wait before the next try (None: it did not say).
        ``Retry-After`` by default; a provider that says it in a header of its own reads that."""
        return retry_after_seconds(response)

    # -- the one place requests' exceptions are translated --------------------------------
    @property
    def session(self) -> requests.Session:
        """A keep-alive session per worker thread."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = bool(self.settings.http_proxy)
            if self.settings.http_proxy:
                session.proxies = {
                    "http": self.settings.http_proxy,
                    "https": self.settings.http_proxy,
                }
            session.headers["User-Agent"] = "newsletter/0.1"
            self._local.session = session
        return session

    def send(self, request: HttpRequest) -> requests.Response:
        timeout = (min(10.0, self.settings.http_timeout), self.settings.http_timeout)
        headers, data = request.body()
        try:
            return self.session.request(
                request.method,
                request.url,
                headers=headers,
                data=data,
                files=request.files,
                auth=request.auth,
                timeout=timeout,
            )
        except (requests.ConnectTimeout, requests.exceptions.SSLError) as exc:
            raise self._unreachable(request, exc) from exc
        except requests.ConnectionError as exc:
            if _failed_before_sending(exc):
                raise self._unreachable(request, exc) from exc
            raise UnknownOutcomeError(f"connection lost: {exc}", provider=self.name) from exc
        except requests.Timeout as exc:
            raise UnknownOutcomeError(f"no answer in time: {exc}", provider=self.name) from exc
        except requests.RequestException as exc:
            raise UnknownOutcomeError(f"request failed: {exc}", provider=self.name) from exc

    def _unreachable(self, request: HttpRequest, exc: requests.RequestException) -> ProviderError:
        """Nothing reached the provider: a wrong address, or it is down. Says which variable
        holds the address; the whole of ``exc`` is in the debug log."""
        log.debug("%s: %r", request, exc)
        why = unreachable(self.name, request.url, _connection_failure(exc))
        return TransientProviderError(why, provider=self.name)

    def send_batch(self, issue: PreparedIssue, batch: OutgoingBatch) -> BatchResult:
        response = self.send(self.build_request(issue, batch))
        self.raise_for_error(response)
        try:
            return self.parse_response(batch, response)
        except (ValueError, KeyError, TypeError) as exc:
            raise UnknownOutcomeError(
                f"unreadable answer: {exc}",
                provider=self.name,
                status=response.status_code,
                body=response.text,
            ) from exc

    def close(self) -> None:
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()
            self._local.session = None


def _failed_before_sending(exc: requests.ConnectionError) -> bool:
    """True when the connection was refused or never set up, so nothing reached the provider."""
    text = repr(exc)
    markers = (
        "NewConnectionError",
        "Connection refused",
        "Name or service not known",
        "NameResolutionError",
        "Failed to establish",
    )
    return any(m in text for m in markers)


#: The operating system's words in a connection error, e.g. "[Errno 111] Connection refused".
_OS_ERROR = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")


def _connection_failure(exc: requests.RequestException) -> str:
    """The cause of a failed connection in a few words, not urllib3's nested reprs."""
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS failed"
    if isinstance(exc, requests.ConnectTimeout):
        return "no connection in time"
    found = _OS_ERROR.search(str(exc))
    if found is not None:
        return found.group(0).strip()
    if "NameResolutionError" in repr(exc) or "Name or service not known" in str(exc):
        return "the host name does not resolve"
    return type(exc).__name__


def error_message(response: requests.Response) -> str:
    """The provider's own words, from its JSON error body when it has one."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason or "error"
    if isinstance(body, dict):
        for key in ("message", "Message", "error", "name"):
            if isinstance(body.get(key), str):
                return str(body[key])
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message", errors[0]))
    return response.text[:300]


def mime_message(issue: PreparedIssue, copy: MergedCopy, to: str, message_id: str) -> EmailMessage:
    """One recipient's RFC 5322 message, for providers that take raw MIME (outbox, SMTP, SES)."""
    from ..render.message import build_message

    return build_message(
        subject=copy.subject,
        from_header=issue.from_header,
        to_header=to,
        reply_to=issue.reply_to,
        text=copy.text,
        html=copy.html,
        headers=copy.headers,
        message_id=message_id,
    )
