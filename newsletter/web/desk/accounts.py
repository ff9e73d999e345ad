"""Desk accounts: names, roles and argon2id password hashes (argon2-cffi's defaults).

The command line (``newsletter users``) and the sign-in page share these. A password is
only ever held long enough to hash or verify it; nothing here logs one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ...errors import ConfigError
from ...store import Store
from ...store import desk as desk_store
from ...store.desk import User

ROLES = ("editor", "admin")
MIN_PASSWORD = 12
#: argon2 hashes its input whole: a megabyte-long "password" would cost a megabyte of work
#: per attempt, so longer ones are refused before hashing.
MAX_PASSWORD = 1024
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")

_hasher = PasswordHasher()  # argon2id, RFC 9106's second recommended parameter set


@lru_cache(maxsize=1)
def dummy_hash() -> str:
    """A hash no password matches, verified against for unknown names, so that a wrong name
    costs as much time as a wrong password and the answer's timing tells nothing."""
    return _hasher.hash("no account has this password: it only spends the same time")


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"NAME {name!r}: use 1 to 64 lower-case letters, digits, dots, dashes or "
            "underscores, starting with a letter or digit"
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ConfigError(f"--role {role!r}: must be one of {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ConfigError(
            f"password: too short ({len(password)} characters); use at least {MIN_PASSWORD}"
        )
    if len(password) > MAX_PASSWORD:
        raise ConfigError(f"password: too long; use at most {MAX_PASSWORD} characters")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(check_password(password))


@dataclass(frozen=True, slots=True)
class Verified:
    user: User
    #: A new hash when the stored one was made with older parameters (None: keep it).
    rehashed: str | None


def verify(user: User | None, password: str) -> Verified | None:
    """The user if ``password`` is theirs; an unknown user costs the same work."""
    if len(password) > MAX_PASSWORD:
        password = password[:MAX_PASSWORD]  # still verified (and still wrong), not refused
    stored = user.password_hash if user is not None else dummy_hash()
    try:
        _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if user is None:
        return None
    fresh = _hasher.hash(password) if _hasher.check_needs_rehash(stored) else None
    return Verified(user, fresh)


# -- what ``newsletter users`` does ----------------------------------------------------------
def add(store: Store, name: str, role: str, password: str) -> None:
    check_name(name)
    check_role(role)
    hashed = hash_password(password)
    with store.engine.begin() as conn:
        desk_store.add_user(conn, name, role, hashed, store.now())


def remove(store: Store, name: str) -> None:
    with store.engine.begin() as conn:
        desk_store.remove_user(conn, name)


def change_password(store: Store, name: str, password: str) -> int:
    """Set a new password and end every session of the account; returns how many ended."""
    hashed = hash_password(password)
    with store.engine.begin() as conn:
        user = desk_store.get_user(conn, name)
        desk_store.set_password_hash(conn, user.id, hashed)
        return desk_store.end_sessions_of(conn, user.id)


def listing(store: Store) -> list[User]:
    with store.engine.connect() as conn:
        return desk_store.all_users(conn)
