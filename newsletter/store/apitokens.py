"""The HTTP API's tokens: a name, a role and the token's SHA-256, never the token.

Plain functions over a ``Connection``, like the other store modules; making a token and
deciding what one may do is ``newsletter.web.api``'s business.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import ConfigError, NotFoundError
from .tables import api_tokens


@dataclass(frozen=True, slots=True)
class ApiToken:
    id: int
    name: str
    role: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


_COLUMNS = [c for c in api_tokens.c if c.name != "token_hash"]


def _token(row: object) -> ApiToken:
    r = row._mapping  # type: ignore[attr-defined]
    return ApiToken(
        r["id"], r["name"], r["role"], r["created_at"], r["last_used_at"], r["revoked_at"]
    )


def add(conn: Connection, name: str, role: str, token_hash: str, at: datetime) -> None:
    try:
        with conn.begin_nested():  # a duplicate leaves the caller's transaction usable
            conn.execute(
                insert(api_tokens).values(
                    name=name, role=role, token_hash=token_hash, created_at=at
                )
            )
    except IntegrityError as exc:
        raise ConfigError(
            f"NAME: there is already a token named {name} (revoked tokens keep their names, "
            "so that the issue history's api:NAME stays one token); choose another name"
        ) from exc


def live_by_hash(conn: Connection, token_hash: str) -> ApiToken | None:
    """The token whose SHA-256 is ``token_hash``, unless it was revoked."""
    row = conn.execute(
        select(*_COLUMNS).where(
            api_tokens.c.token_hash == token_hash, api_tokens.c.revoked_at.is_(None)
        )
    ).first()
    return None if row is None else _token(row)


def touch(conn: Connection, token_id: int, at: datetime) -> None:
    conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=at))


def all_tokens(conn: Connection) -> list[ApiToken]:
    return [_token(r) for r in conn.execute(select(*_COLUMNS).order_by(api_tokens.c.name))]


def revoke(conn: Connection, name: str, at: datetime) -> None:
    """Mark the token revoked; its row stays, so its name is not given out again."""
    found = conn.execute(
        select(api_tokens.c.revoked_at).where(api_tokens.c.name == name)
    ).first()
    if found is None:
        raise NotFoundError(f"no token named {name}")
    if found.revoked_at is None:
        conn.execute(update(api_tokens).where(api_tokens.c.name == name).values(revoked_at=at))
