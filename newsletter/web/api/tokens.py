"""API tokens: made once, shown once, kept only as their SHA-256.

A token is ``nl_`` and 32 random bytes from ``secrets`` (URL-safe base64). Being random and
that long, it cannot be guessed or found from its hash by trying, so one fast SHA-256 is
all the keeping it needs: a slow hash (argon2, as for the desk's passwords) protects what
people choose, which can be guessed, and here would only slow every request down.

``newsletter tokens`` makes, lists and revokes them; the API checks them (``authenticate``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from ...store import Store
from ...store import apitokens as token_store
from ...store.apitokens import ApiToken
from ..desk.accounts import check_name, check_role

PREFIX = "nl_"
TOKEN_BYTES = 32
#: What ``secrets.token_urlsafe(32)`` after the prefix looks like; anything else is refused
#: before the database is asked.
TOKEN_SHAPE = re.compile(r"nl_[A-Za-z0-9_-]{43}")
#: last_used_at is written at most this often, so a busy script costs few writes.
TOUCH_EVERY = timedelta(minutes=1)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def create(store: Store, name: str, role: str) -> str:
    """A new token called ``name``; returns it, the only time it is ever seen."""
    check_name(name)
    check_role(role)
    token = PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    with store.engine.begin() as conn:
        token_store.add(conn, name, role, digest(token), store.now())
    return token


def revoke(store: Store, name: str) -> None:
    with store.engine.begin() as conn:
        token_store.revoke(conn, name, store.now())


def listing(store: Store) -> list[ApiToken]:
    with store.engine.connect() as conn:
        return token_store.all_tokens(conn)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (None: no such header)."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def authenticate(store: Store, presented: str | None) -> ApiToken | None:
    """The live token ``presented`` is, or None (absent, malformed, unknown or revoked).

    It is looked up by its hash, so no stored value is compared with what a caller sent:
    how long the lookup takes depends on the hash of their guess, which tells them nothing
    about any real token."""
    if presented is None or not TOKEN_SHAPE.fullmatch(presented):
        return None
    now = store.now()
    with store.engine.begin() as conn:
        token = token_store.live_by_hash(conn, digest(presented))
        if token is not None and (
            token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY
        ):
            token_store.touch(conn, token.id, now)
    return token
