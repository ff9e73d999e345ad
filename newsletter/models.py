"""The domain: what the pipeline collects, drafts, renders and delivers.

Value objects are frozen dataclasses; the closed vocabularies are ``StrEnum`` so the same
word is used by providers, the ledger, webhooks, the CLI's JSON and the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import NamedTuple

from .errors import IssueStateError


class IssueKind(StrEnum):
    DIGEST = "digest"
    ARTICLE = "article"


class IssueState(StrEnum):
    DRAFT = "draft"
    QUEUED = "queued"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    PARTIALLY_FAILED = "partially-failed"
    CANCELLED = "cancelled"


#: The issue state machine: which moves are legal, stated once (``check_transition``).
ISSUE_TRANSITIONS: Mapping[IssueState, frozenset[IssueState]] = MappingProxyType({
    IssueState.DRAFT: frozenset({IssueState.QUEUED, IssueState.CANCELLED}),
    IssueState.QUEUED: frozenset(
        {IssueState.DRAFT, IssueState.SENDING, IssueState.PAUSED, IssueState.CANCELLED}
    ),
    IssueState.SENDING: frozenset(
        {IssueState.SENT, IssueState.PARTIALLY_FAILED, IssueState.PAUSED, IssueState.CANCELLED}
    ),
    IssueState.PAUSED: frozenset({IssueState.QUEUED, IssueState.CANCELLED}),
    IssueState.PARTIALLY_FAILED: frozenset({IssueState.QUEUED}),
    IssueState.SENT: frozenset({IssueState.QUEUED}),  # only to resend unknown batches on request
    IssueState.CANCELLED: frozenset(),
})

#: States in which an issue's content may still be edited.
EDITABLE_STATES = frozenset({IssueState.DRAFT})


def check_transition(issue_id: int, current: IssueState, target: IssueState) -> None:
    """Raise ``IssueStateError`` unless ``current`` → ``target`` is allowed."""
    if target not in ISSUE_TRANSITIONS[current]:
        allowed = ", ".join(sorted(ISSUE_TRANSITIONS[current])) or "nothing (final state)"
        raise IssueStateError(
            f"issue {issue_id} is {current}; it cannot become {target} (from {current}: {allowed})"
        )


class BatchState(StrEnum):
    """Where one provider request stands. Committed before and after the HTTP call."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"


class DeliveryStatus(StrEnum):
    """One recipient's fate, shared by providers, ledger rows and webhook events."""

    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SUPPRESSED = "suppressed"
    DELIVERED = "delivered"
    BOUNCED_HARD = "bounced-hard"
    BOUNCED_SOFT = "bounced-soft"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"
    OPENED = "opened"
    CLICKED = "clicked"


class Cadence(StrEnum):
    INSTANT = "instant"
    DIGEST = "digest"


class Approval(StrEnum):
    AUTO = "auto"
    EDITOR = "editor"


class SuppressionReason(StrEnum):
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED_HARD = "bounced-hard"
    BOUNCED_SOFT = "bounced-soft"
    COMPLAINED = "complained"
    MANUAL = "manual"


ALL_LISTS = "*"


@dataclass(frozen=True, slots=True)
class Article:
    """One published piece, as a source found it. ``uid`` is stable across edits."""

    source_id: str
    uid: str
    title: str
    url: str
    published: datetime | None
    content_html: str = ""
    summary_html: str = ""
    author: str = ""
    tags: tuple[str, ...] = ()
    image_url: str = ""
    content_hash: str = ""


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A list member. ``fields`` holds the CSV's extra columns, usable in templates."""

    email: str
    name: str = ""
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Publication:
    """Who publishes: used in every issue's header, footer and envelope."""

    name: str
    base_url: str
    from_email: str
    from_name: str
    postal_address: str
    reply_to: str = ""
    language: str = "en"
    unsubscribe_mailto: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True)
class MailingList:
    """A list as declared in ``subscribers/*.toml``; members are read separately (streamed)."""

    id: str
    title: str
    members_files: tuple[str, ...]
    sources: tuple[str, ...]
    cadence: Cadence = Cadence.DIGEST
    schedule: str = "0 8 * * mon"
    timezone: str = "UTC"
    approval: Approval = Approval.AUTO
    template: str = "digest"
    description: str = ""
    from_email: str = ""
    from_name: str = ""
    reply_to: str = ""
    max_articles: int = 20
    #: The members file confirmed public sign-ups go to ("": the list takes none); it is
    #: read as one of the list's members files.
    signups_file: str = ""
    welcome: bool = False

    @property
    def accepts_signups(self) -> bool:
        return bool(self.signups_file)


class Recipient(NamedTuple):
    """One address an issue goes to, with the values merged into its copy.

    A tuple, not a dataclass: an audience is a million of them, made in a tight loop."""

    email: str
    name: str = ""
    fields: Mapping[str, str] = MappingProxyType({})
    list_id: str = ""


@dataclass(frozen=True, slots=True)
class FetchState:
    """What the store remembers between fetches, for conditional requests."""

    etag: str = ""
    last_modified: str = ""


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One provider event in this package's words.

    ``event_id`` is the provider's own id when it sends one, else a digest of the event's
    payload: either way a redelivered event has the same id and is applied once.
    """

    provider: str
    event_id: str
    type: DeliveryStatus
    email: str
    provider_message_id: str
    at: datetime
    detail: str = ""
