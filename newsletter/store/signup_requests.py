"""Sign-up requests (``signup_requests``): one row per reader and list, whose nonce the
newest confirmation link carries.

A new request for the same address and list replaces the nonce, so only the link in the
newest confirmation works; confirming clears it, so a link works once. Both are one
statement each, a compare-and-set in the database, so two processes confirming the same
link at once cannot both succeed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .db import delete_some
from .tables import signup_requests


@dataclass(frozen=True, slots=True)
class SignupRequest:
    id: int
    list_id: str
    email_key: str
    email: str
    name: str
    nonce: str
    requested_at: datetime
    last_sent_at: datetime | None
    confirmed_at: datetime | None


_FIND = select(signup_requests).where(
    signup_requests.c.list_id == bindparam("list_id"),
    signup_requests.c.email_key == bindparam("email_key"),
)


def find(conn: Connection, list_id: str, email_key: str) -> SignupRequest | None:
    row = conn.execute(_FIND, {"list_id": list_id, "email_key": email_key}).first()
    return None if row is None else _request(row)


def _request(row: Row[Any]) -> SignupRequest:
    return SignupRequest(
        row.id, row.list_id, row.email_key, row.email, row.name, row.nonce,
        row.requested_at, row.last_sent_at, row.confirmed_at,
    )


#: What a new request (or one made anew) sets; ``note`` changes less of an existing one.
_RENEWED = ("email", "name", "nonce", "requested_at", "last_sent_at", "confirmed_at")
_NOTED = ("requested_at",)
_NOTED_SENT = ("requested_at", "last_sent_at")


def _upsert_statement(dialect: str, changes: tuple[str, ...]) -> Any:
    """An upsert built once per dialect (the form runs one per submission; building a
    statement costs more than running it)."""
    make = postgresql_insert if dialect == "postgresql" else sqlite_insert
    new = make(signup_requests).values(
        {name: bindparam(name) for name in ("list_id", "email_key", *_RENEWED)}
    )
    return new.on_conflict_do_update(
        index_elements=["list_id", "email_key"],
        set_={name: getattr(new.excluded, name) for name in changes},
    )


_UPSERTS = {
    (dialect, changes): _upsert_statement(dialect, changes)
    for dialect in ("postgresql", "sqlite")
    for changes in (_RENEWED, _NOTED, _NOTED_SENT)
}


def renew(
    conn: Connection, *, list_id: str, email_key: str, email: str, name: str, nonce: str,
    at: datetime,
) -> None:
    """Make (or remake) the request with a fresh ``nonce``, a confirmation queued ``at``:
    any earlier link of this reader and list stops working."""
    values = {
        "list_id": list_id, "email_key": email_key, "email": email, "name": name,
        "nonce": nonce, "requested_at": at, "last_sent_at": at, "confirmed_at": None,
    }
    conn.execute(_UPSERTS[conn.dialect.name, _RENEWED], values)


def note(
    conn: Connection, *, list_id: str, email_key: str, email: str, name: str, sent: bool,
    at: datetime,
) -> None:
    """Record that the reader asked again ``at`` without changing the link they hold;
    ``sent``: a message other than a confirmation (a notice) went to them."""
    values = {
        "list_id": list_id, "email_key": email_key, "email": email, "name": name, "nonce": "",
        "requested_at": at, "last_sent_at": at if sent else None, "confirmed_at": None,
    }
    conn.execute(_UPSERTS[conn.dialect.name, _NOTED_SENT if sent else _NOTED], values)


def confirm(
    conn: Connection, list_id: str, email_key: str, nonce: str, *, at: datetime
) -> SignupRequest | None:
    """Confirm the request if ``nonce`` is still its nonce: the request as confirmed, or
    None when the link was used already or replaced by a newer one."""
    if not nonce:
        return None
    stmt = (
        update(signup_requests)
        .where(
            signup_requests.c.list_id == list_id,
            signup_requests.c.email_key == email_key,
            signup_requests.c.nonce == nonce,
        )
        .values(nonce="", confirmed_at=at)
        .returning(*signup_requests.c)
    )
    row = conn.execute(stmt).first()
    return None if row is None else _request(row)


def forget(conn: Connection, email: str) -> int:
    """Erase every request of ``email`` (``subscribers forget``); how many went."""
    stmt = delete(signup_requests).where(signup_requests.c.email_key == email.strip().lower())
    return int(conn.execute(stmt).rowcount)


def prune_expired(conn: Connection, *, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` requests never confirmed and last made before ``before`` (their
    link has expired: it was made no later than the request); how many."""
    return delete_some(conn, signup_requests, signup_requests.c.confirmed_at.is_(None),
                       signup_requests.c.requested_at < before, limit=limit)
