"""Suppressing an address and lifting a suppression, finding them a page at a time, and
exporting them as CSV: what ``newsletter suppressions …``, the desk's suppressions page and
the HTTP API all call.

Lifting a hard bounce or a complaint must be acknowledged (``acknowledged=True``): mail to
an address that bounced hard counts against the sender with every mailbox provider, and a
complaint is the reader saying this mail is unwanted.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from email_validator import EmailNotValidError

from ..errors import ConfigError, NotFoundError
from ..lists.address import sendable_address
from ..models import ALL_LISTS, SuppressionReason
from ..store import Store, events
from ..store import suppressions as suppression_store
from ..store.suppressions import Suppression
from .csvtext import drained, inert

#: The columns of an export, in order (``Suppression.as_dict`` gives them).
EXPORT_COLUMNS = ("email", "scope", "reason", "source", "detail", "created_at")
#: Suppressions on a page of the desk (and of the API, unless it asks for fewer).
PAGE_SIZE = 50
#: Reasons whose lifting must be acknowledged.
RISKY = frozenset({SuppressionReason.BOUNCED_HARD, SuppressionReason.COMPLAINED})
WHY_RISKY = (
    "An address that bounced hard does not exist: mailing it again counts against the "
    "publication with every mailbox provider, and too many such bounces send its mail to "
    "spam or get the sending account suspended. A complaint means the reader marked the "
    "mail as spam; mailing them again without their word does the same harm, and worse."
)
class InvalidAddressError(ConfigError):
    """The address given is not one mail can be sent to; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnacknowledgedError(ConfigError):
    """Lifting a hard bounce or a complaint without saying the risk is understood."""


def scope_words(scope: str) -> str:
    return "every list" if scope == ALL_LISTS else f"list {scope!r}"


# -- suppressing and lifting -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Suppressed:
    """The outcome of ``suppress``: the address as stored, and whether it was new there."""

    email: str
    scope: str
    reason: SuppressionReason
    added: bool

    def as_dict(self) -> dict[str, object]:
        return {"email": self.email, "scope": self.scope, "reason": str(self.reason),
                "added": self.added}


def checked_address(email: str) -> str:
    """The address in the form mail is sent to, or ``InvalidAddressError``."""
    try:
        return sendable_address(email.strip())
    except EmailNotValidError as exc:
        raise InvalidAddressError(str(exc)) from exc


def suppress(
    store: Store,
    email: str,
    *,
    reason: SuppressionReason = SuppressionReason.MANUAL,
    scope: str = ALL_LISTS,
    source: str,
    note: str = "",
) -> Suppressed:
    """Stop mail to ``email`` for ``scope`` (a list id, or every list). An address already
    suppressed there keeps its first reason (``added`` is False)."""
    address = checked_address(email)
    with store.engine.begin() as conn:
        added = suppression_store.add(conn, address, reason, scope=scope, source=source,
                                      detail=note, at=store.now())
    return Suppressed(suppression_store.normalise(address), scope, reason, added)


@dataclass(frozen=True, slots=True)
class Lifted:
    """The suppressions ``lift`` removed."""

    email: str
    removed: tuple[Suppression, ...]

    def as_dict(self) -> dict[str, object]:
        return {"email": self.email, "lifted": [s.as_dict() for s in self.removed]}


def lift(
    store: Store, email: str, scope: str | None = None, *, acknowledged: bool
) -> Lifted:
    """Send to ``email`` again: lift its suppression for ``scope`` (or every one it has).
    Lifting for every list also forgets its soft bounces, else the next one would suppress
    it again. ``NotFoundError`` when nothing matches; ``UnacknowledgedError`` when a hard
    bounce or a complaint would be lifted without ``acknowledged``."""
    with store.engine.begin() as conn:
        found = suppression_store.of_address(conn, email, scope)
        if not found:
            where = f" for {scope_words(scope)}" if scope is not None else ""
            raise NotFoundError(f"{email} is not suppressed{where}")
        risky = sorted({str(s.reason) for s in found if s.reason in RISKY})
        if risky and not acknowledged:
            raise UnacknowledgedError(
                f"{suppression_store.normalise(email)} is suppressed as {' and '.join(risky)}: "
                f"confirm that it should get mail again. {WHY_RISKY}"
            )
        suppression_store.remove(conn, email, scope)
        if scope in (None, ALL_LISTS):
            events.reset_soft_bounces(conn, email)
    return Lifted(suppression_store.normalise(email), tuple(found))


# -- finding them ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SuppressionCursor:
    """Where a page starts: after this address and scope. Its ``token`` travels in links."""

    email: str
    scope: str

    @property
    def token(self) -> str:
        raw = f"{self.email}\x00{self.scope}".encode()
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    @classmethod
    def parse(cls, token: str) -> SuppressionCursor:
        """The cursor ``token`` names; ``ConfigError`` naming ``after`` if it names none."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(f"after: {token[:40]!r} is not a page of suppressions") from exc
        email, sep, scope = raw.partition("\x00")
        if not sep:
            raise ConfigError(f"after: {token[:40]!r} is not a page of suppressions")
        return cls(email, scope)


@dataclass(frozen=True, slots=True)
class SuppressionPage:
    """One page of suppressions by address, and the cursor of the next (None on the last)."""

    entries: tuple[Suppression, ...]
    next: SuppressionCursor | None
    prefix: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "suppressions": [s.as_dict() for s in self.entries],
            "prefix": self.prefix,
            "next": self.next.token if self.next else None,
        }


def suppression_page(
    store: Store, prefix: str = "", *, after: SuppressionCursor | None = None,
    size: int = PAGE_SIZE,
) -> SuppressionPage:
    """``size`` suppressions of addresses that start with ``prefix``, after ``after``."""
    with store.engine.connect() as conn:
        rows = suppression_store.search(
            conn, prefix, after=(after.email, after.scope) if after else None, limit=size + 1
        )
    shown = tuple(rows[:size])
    more = SuppressionCursor(shown[-1].email, shown[-1].scope) if len(rows) > size else None
    return SuppressionPage(shown, more, prefix)


# -- exporting -------------------------------------------------------------------------------
def export_rows(store: Store, scope: str | None = None, chunk: int = 1000) -> Iterator[Suppression]:
    """Every suppression (of one scope), by address: read a chunk at a time, each in a
    short transaction of its own, so a long download holds no connection between chunks."""
    after: tuple[str, str] | None = None
    while True:
        with store.engine.connect() as conn:
            rows = suppression_store.search(conn, scope=scope, after=after, limit=chunk)
        yield from rows
        if len(rows) < chunk:
            return
        after = (rows[-1].email, rows[-1].scope)


def csv_chunks(rows: Iterable[Suppression], *, for_spreadsheets: bool = False) -> Iterator[str]:
    """The CSV text of ``rows`` under a header of ``EXPORT_COLUMNS``, a piece at a time.
    ``for_spreadsheets`` puts a ``'`` before a source or detail that a spreadsheet would
    run as a formula (OWASP's advice for CSV meant to be opened in one)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for n, row in enumerate(rows, 1):
        values = row.as_dict()
        if for_spreadsheets:
            values["source"], values["detail"] = inert(row.source), inert(row.detail)
        writer.writerow(values)
        if n % 500 == 0:
            yield drained(buffer)
    yield drained(buffer)

