"""The desk's records: accounts, server-side sessions, and failed sign-ins to throttle.

Plain functions over a ``Connection``, like the other store modules; hashing passwords and
deciding what a session or a failure means is ``newsletter.web.desk``'s business.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import ConfigError, NotFoundError
from .tables import desk_sessions, desk_throttle, desk_users


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    role: str
    password_hash: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SessionRow:
    user: User
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime


def _user(row: object) -> User:
    r = row._mapping  # type: ignore[attr-defined]
    return User(r["id"], r["name"], r["role"], r["password_hash"], r["created_at"])


# -- accounts --------------------------------------------------------------------------------
def add_user(conn: Connection, name: str, role: str, password_hash: str, at: datetime) -> int:
    try:
        with conn.begin_nested():  # a duplicate leaves the caller's transaction usable
            return int(
                conn.execute(
                    insert(desk_users)
                    .values(name=name, role=role, password_hash=password_hash, created_at=at)
                    .returning(desk_users.c.id)
                ).scalar_one()
            )
    except IntegrityError as exc:
        raise ConfigError(f"NAME: there is already a user named {name}") from exc


def find_user(conn: Connection, name: str) -> User | None:
    row = conn.execute(select(desk_users).where(desk_users.c.name == name)).first()
    return None if row is None else _user(row)


def get_user(conn: Connection, name: str) -> User:
    user = find_user(conn, name)
    if user is None:
        raise NotFoundError(f"no user named {name}")
    return user


def all_users(conn: Connection) -> list[User]:
    return [_user(r) for r in conn.execute(select(desk_users).order_by(desk_users.c.name))]


def remove_user(conn: Connection, name: str) -> None:
    """Remove the account; its sessions go with it (the foreign key cascades, and are
    deleted here as well for a SQLite connection opened without foreign keys)."""
    user = get_user(conn, name)
    conn.execute(delete(desk_sessions).where(desk_sessions.c.user_id == user.id))
    conn.execute(delete(desk_users).where(desk_users.c.id == user.id))


def set_password_hash(conn: Connection, user_id: int, password_hash: str) -> None:
    conn.execute(
        update(desk_users).where(desk_users.c.id == user_id).values(password_hash=password_hash)
    )


# -- sessions --------------------------------------------------------------------------------
def add_session(
    conn: Connection, id_hash: str, user_id: int, csrf_token: str, at: datetime
) -> None:
    conn.execute(
        insert(desk_sessions).values(
            id_hash=id_hash, user_id=user_id, csrf_token=csrf_token, created_at=at,
            last_seen_at=at,
        )
    )


def find_session(conn: Connection, id_hash: str) -> SessionRow | None:
    row = conn.execute(
        select(desk_sessions, desk_users)
        .join(desk_users, desk_users.c.id == desk_sessions.c.user_id)
        .where(desk_sessions.c.id_hash == id_hash)
    ).first()
    if row is None:
        return None
    r = row._mapping
    return SessionRow(
        _user(row), r[desk_sessions.c.csrf_token], r[desk_sessions.c.created_at],
        r[desk_sessions.c.last_seen_at],
    )


def touch_session(conn: Connection, id_hash: str, at: datetime) -> None:
    conn.execute(
        update(desk_sessions).where(desk_sessions.c.id_hash == id_hash).values(last_seen_at=at)
    )


def end_session(conn: Connection, id_hash: str) -> None:
    conn.execute(delete(desk_sessions).where(desk_sessions.c.id_hash == id_hash))


def end_sessions_of(conn: Connection, user_id: int) -> int:
    return int(conn.execute(delete(desk_sessions).where(desk_sessions.c.user_id == user_id))
               .rowcount)


def end_sessions_before(conn: Connection, idle_since: datetime, created_before: datetime) -> int:
    """Drop sessions idle since ``idle_since`` or begun before ``created_before``."""
    stale = (desk_sessions.c.last_seen_at < idle_since) | (
        desk_sessions.c.created_at < created_before
    )
    return int(conn.execute(delete(desk_sessions).where(stale)).rowcount)


# -- throttling ------------------------------------------------------------------------------
def locked_until(conn: Connection, keys: list[str]) -> datetime | None:
    """The latest time any of ``keys`` is locked until (None: none is locked)."""
    found = conn.execute(
        select(desk_throttle.c.locked_until).where(
            desk_throttle.c.key.in_(keys), desk_throttle.c.locked_until.is_not(None)
        )
    ).scalars()
    return max(found, default=None)


def count_failure(conn: Connection, key: str, at: datetime) -> int:
    """Add one failure to ``key`` and return its count. The increment is done by the
    database (the row locked, or SQLite's write lock taken, until commit), so two processes
    counting a failure at once count two."""
    add_one = (
        update(desk_throttle)
        .where(desk_throttle.c.key == key)
        .values(failures=desk_throttle.c.failures + 1, updated_at=at)
    )
    if conn.execute(add_one).rowcount == 0:
        try:
            with conn.begin_nested():
                conn.execute(insert(desk_throttle).values(key=key, failures=1, updated_at=at))
        except IntegrityError:  # another process counted the first one a moment ago
            conn.execute(add_one)
    count = conn.execute(select(desk_throttle.c.failures).where(desk_throttle.c.key == key))
    return int(count.scalar_one())


def lock(conn: Connection, key: str, until: datetime | None) -> None:
    conn.execute(
        update(desk_throttle).where(desk_throttle.c.key == key).values(locked_until=until)
    )


def clear(conn: Connection, key: str) -> None:
    conn.execute(delete(desk_throttle).where(desk_throttle.c.key == key))
