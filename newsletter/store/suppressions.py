"""The suppression store: addresses that must not receive mail, whatever the CSV files say.

A row's ``scope`` is a list id, or ``ALL_LISTS`` ("*") for every list. Lookups are by the
lower-cased address, the same normalisation the ledger uses.

A reader forgotten at their request (``newsletter subscribers forget``) leaves one row whose
``email`` is not their address but ``forgotten_key`` of it: ``forgotten:`` and a one-way hash.
It is what stops an old copy of a member file from mailing them again, and every check here
honours it; the address itself is no longer held. A send screens its audience against these
hashes as it reads the list (``ForgottenScreen``), at no cost when there are none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Row, and_, bindparam, delete, func, or_, select

from ..models import ALL_LISTS, Recipient, SuppressionReason
from .db import dialect_insert
from .tables import suppressions


def normalise(email: str) -> str:
    return email.strip().lower()


#: How a forgotten reader's row starts (an address never does: it has no @ in this place).
FORGOTTEN = "forgotten:"
#: The hash's own prefix, so that it is not the bare SHA-256 of a lower-cased address that
#: marketing data sets use to match people across lists ("hashed emails").
_FORGOTTEN_HASH = hashlib.sha256(b"newsletter: a reader forgotten at their request\x00")
FORGOTTEN_SOURCE = "subscribers forget"


def forgotten_digest(email: str) -> bytes:
    """The one-way hash that stands for a forgotten address (compared lower-cased)."""
    hashed = _FORGOTTEN_HASH.copy()
    hashed.update(normalise(email).encode())
    return hashed.digest()


def forgotten_key(email: str) -> str:
    """The ``email`` of the row that keeps ``email`` from being mailed once it is forgotten."""
    return FORGOTTEN + forgotten_digest(email).hex()


@dataclass(frozen=True, slots=True)
class Suppression:
    email: str
    scope: str
    reason: SuppressionReason
    source: str
    detail: str
    created_at: datetime

    def as_dict(self) -> dict[str, str]:
        """JSON-ready, and the columns of an export, in their order."""
        return {
            "email": self.email, "scope": self.scope, "reason": str(self.reason),
            "source": self.source, "detail": self.detail,
            "created_at": self.created_at.isoformat(),
        }


def add(
    conn: Connection,
    email: str,
    reason: SuppressionReason,
    *,
    scope: str = ALL_LISTS,
    source: str = "",
    detail: str = "",
    at: datetime,
) -> bool:
    """Suppress ``email`` for ``scope``; False when it already was (the first reason stays).

    A forgotten address already is, for every list: its row is not written again (an old
    email's unsubscribe link, or a late bounce, would otherwise store it anew)."""
    if is_forgotten(conn, email):
        return False
    values = {
        "email": normalise(email),
        "scope": scope,
        "reason": str(reason),
        "source": source,
        "detail": detail[:2000],
        "created_at": at,
    }
    stmt = dialect_insert(conn, suppressions).values(**values).on_conflict_do_nothing()
    # RETURNING, not rowcount: psycopg reports -1 for this statement, which reads as True.
    return conn.execute(stmt.returning(suppressions.c.email)).first() is not None


def remove(conn: Connection, email: str, scope: str | None = None) -> int:
    """Lift suppressions of ``email`` (for one scope, or all of them); returns how many. The
    row left when it was forgotten is lifted too: a reader who subscribes again is mailed."""
    stmt = delete(suppressions).where(suppressions.c.email.in_(_keys(email)))
    if scope is not None:
        stmt = stmt.where(suppressions.c.scope == scope)
    return int(conn.execute(stmt).rowcount)


def _keys(email: str) -> list[str]:
    """The rows that may suppress ``email``: its own, and the one left if it was forgotten."""
    return [normalise(email), forgotten_key(email)]


def is_suppressed(conn: Connection, email: str, list_id: str) -> bool:
    stmt = select(suppressions.c.email).where(
        suppressions.c.email.in_(_keys(email)),
        or_(suppressions.c.scope == ALL_LISTS, suppressions.c.scope == list_id),
    )
    return conn.execute(stmt.limit(1)).first() is not None


def suppressed_among(
    conn: Connection,
    emails: Iterable[str],
    list_id: str,
    forgotten: frozenset[bytes] | None = None,
) -> set[str]:
    """Which of ``emails`` (normalised) are suppressed for ``list_id``; queried in chunks.
    Forgotten ones count: ``forgotten`` is ``forgotten_digests``, read here if not given (a
    caller asking chunk by chunk reads it once: it is a scan of the suppressions)."""
    screen = ForgottenScreen(forgotten_digests(conn) if forgotten is None else forgotten)
    found: set[str] = set()
    chunk: list[str] = []
    for address in emails:
        chunk.append(normalise(address))
        if len(chunk) == 500:
            found |= _suppressed_chunk(conn, chunk, list_id) | screen.among(chunk)
            chunk = []
    if chunk:
        found |= _suppressed_chunk(conn, chunk, list_id) | screen.among(chunk)
    return found


def emails_for(conn: Connection, list_id: str) -> Iterator[str]:
    """Every address suppressed for ``list_id`` (for it, or for every list), each once,
    streamed rather than read whole."""
    stmt = select(suppressions.c.email).distinct().where(
        or_(suppressions.c.scope == ALL_LISTS, suppressions.c.scope == list_id)
    )
    for row in conn.execution_options(yield_per=5000).execute(stmt):
        yield row[0]


def fingerprint(conn: Connection, list_id: str) -> tuple[int, datetime | None]:
    """How many suppressions apply to ``list_id``, and the newest's time: any change to
    them (one added, one lifted) changes this pair."""
    stmt = select(func.count(), func.max(suppressions.c.created_at)).where(
        or_(suppressions.c.scope == ALL_LISTS, suppressions.c.scope == list_id)
    )
    count, newest = conn.execute(stmt).one()
    return int(count), newest


def _suppressed_chunk(conn: Connection, chunk: list[str], list_id: str) -> set[str]:
    stmt = select(suppressions.c.email).where(
        suppressions.c.email.in_(chunk),
        or_(suppressions.c.scope == ALL_LISTS, suppressions.c.scope == list_id),
    )
    return {row[0] for row in conn.execute(stmt)}


def is_forgotten(conn: Connection, email: str) -> bool:
    stmt = select(suppressions.c.email).where(suppressions.c.email == forgotten_key(email))
    return conn.execute(stmt.limit(1)).first() is not None


def add_forgotten(conn: Connection, email: str, *, at: datetime) -> bool:
    """Keep ``email`` from ever being mailed again without keeping it: a suppression for every
    list keyed by ``forgotten_key``. False when it was there already."""
    values = {
        "email": forgotten_key(email),
        "scope": ALL_LISTS,
        "reason": str(SuppressionReason.MANUAL),
        "source": FORGOTTEN_SOURCE,
        "detail": "",
        "created_at": at,
    }
    stmt = dialect_insert(conn, suppressions).values(**values).on_conflict_do_nothing()
    return conn.execute(stmt.returning(suppressions.c.email)).first() is not None


def lift_forgotten(conn: Connection, email: str) -> bool:
    """Take out the row that stands for forgotten ``email``; whether there was one."""
    stmt = delete(suppressions).where(suppressions.c.email == forgotten_key(email))
    return bool(conn.execute(stmt).rowcount)


def forgotten_since(conn: Connection, email: str) -> datetime | None:
    """When ``email`` was forgotten, or None if it was not."""
    stmt = select(suppressions.c.created_at).where(suppressions.c.email == forgotten_key(email))
    found = conn.execute(stmt.limit(1)).first()
    return None if found is None else found[0]


def forgotten_digests(conn: Connection) -> frozenset[bytes]:
    """The hashes of every forgotten address (a row not in the form is skipped)."""
    rows = conn.execute(
        select(suppressions.c.email).where(suppressions.c.email.startswith(FORGOTTEN))
    ).scalars()
    found = set()
    for key in rows:
        try:
            found.add(bytes.fromhex(key[len(FORGOTTEN):]))
        except ValueError:
            continue
    return frozenset(found)


@dataclass(slots=True)
class ForgottenScreen:
    """Leaves out the addresses whose hash is among ``digests``, counting them in ``left_out``.

    A send reads its list through ``members``: with no forgotten reader it is not called at
    all, and with some it costs one SHA-256 and a set look-up per member, whatever their
    number (``bench/forgotten.py``: 0.79 µs a member on a machine three times slower than
    the one whose million-member send takes 11 to 16 s).
    """

    digests: frozenset[bytes]
    left_out: int = field(default=0)

    def members(self, members: Iterable[Recipient]) -> Iterator[Recipient]:
        new_hash, digests = _FORGOTTEN_HASH.copy, self.digests
        for member in members:
            hashed = new_hash()
            hashed.update(member[0].strip().lower().encode())  # [0]: the address, looked up faster
            if hashed.digest() in digests:
                self.left_out += 1
                continue
            yield member

    def among(self, addresses: Iterable[str]) -> set[str]:
        """Those of ``addresses`` that were forgotten."""
        if not self.digests:
            return set()
        return {a for a in addresses if forgotten_digest(a) in self.digests}


def iter_all(conn: Connection, scope: str | None = None) -> Iterator[Suppression]:
    stmt = select(suppressions).order_by(suppressions.c.email, suppressions.c.scope)
    if scope is not None:
        stmt = stmt.where(suppressions.c.scope == scope)
    for row in conn.execute(stmt):
        yield _suppression(row)


def search(
    conn: Connection,
    prefix: str = "",
    *,
    scope: str | None = None,
    after: tuple[str, str] | None = None,
    limit: int = 50,
) -> list[Suppression]:
    """Suppressions by address then scope, of addresses starting with ``prefix`` (any case),
    after the (email, scope) of the last row of the page before: keyset paging."""
    stmt = select(suppressions).order_by(suppressions.c.email, suppressions.c.scope).limit(limit)
    if prefix:
        stmt = stmt.where(suppressions.c.email.startswith(normalise(prefix), autoescape=True))
    if scope is not None:
        stmt = stmt.where(suppressions.c.scope == scope)
    if after is not None:
        email, after_scope = after
        stmt = stmt.where(or_(
            suppressions.c.email > email,
            and_(suppressions.c.email == email, suppressions.c.scope > after_scope),
        ))
    return [_suppression(row) for row in conn.execute(stmt)]


def of_address(conn: Connection, email: str, scope: str | None = None) -> list[Suppression]:
    """The suppressions of ``email`` (for one scope, or all of them), the row left if it
    was forgotten included."""
    stmt = select(suppressions).where(suppressions.c.email.in_(_keys(email)))
    if scope is not None:
        stmt = stmt.where(suppressions.c.scope == scope)
    return [_suppression(row) for row in conn.execute(stmt.order_by(suppressions.c.scope))]


def _suppression(row: Row[Any]) -> Suppression:
    return Suppression(
        row.email,
        row.scope,
        SuppressionReason(row.reason),
        row.source,
        row.detail,
        row.created_at,
    )


class Added(NamedTuple):
    """A suppression as a send in progress sees it: enough to drop a recipient, and why."""

    email: str
    scope: str
    reason: str
    source: str
    created_at: datetime


def added_since(conn: Connection, since: datetime) -> list[Added]:
    """Suppressions created at or after ``since``, oldest first: through the index on
    ``created_at``, so a send can ask before every batch what was added meanwhile."""
    return [Added(*row) for row in conn.execute(_ADDED_SINCE, {"since": since})]


# Built once: a send runs it before every batch, and building it per call cost more than
# running it on an empty range of the index.
_ADDED_SINCE = (
    select(
        suppressions.c.email,
        suppressions.c.scope,
        suppressions.c.reason,
        suppressions.c.source,
        suppressions.c.created_at,
    )
    .where(suppressions.c.created_at >= bindparam("since", type_=suppressions.c.created_at.type))
    .order_by(suppressions.c.created_at)
)


def lift_unsubscribed(conn: Connection, email: str, scope: str) -> int:
    """Take out ``email``'s ``unsubscribed`` row for ``scope`` and no other: a reader who
    subscribes again lifts their own choice to leave, never a bounce, a complaint, an
    admin's suppression or the row left when they were forgotten. How many went (0 or 1)."""
    stmt = delete(suppressions).where(
        suppressions.c.email == normalise(email),
        suppressions.c.scope == scope,
        suppressions.c.reason == str(SuppressionReason.UNSUBSCRIBED),
    )
    return int(conn.execute(stmt).rowcount)
