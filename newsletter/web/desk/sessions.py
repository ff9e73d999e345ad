"""Server-side desk sessions: the browser holds a random id, the database its SHA-256.

A session id is made at sign-in and at no other time, so a value planted in a browser
before sign-in is never the one it is signed in with (session fixation). It ends at
sign-out, after ``desk_idle_minutes`` without a request, ``desk_session_hours`` after
sign-in, and when its account is removed or its password changed.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from ...config import Settings
from ...store import Store
from ...store import desk as desk_store
from ...store.desk import User

#: Tokens of 32 random bytes: far beyond guessing, and URL-safe for a cookie and a form.
TOKEN_BYTES = 32
#: last_seen_at is written at most this often, so a page of requests costs one write.
TOUCH_EVERY = timedelta(seconds=30)


def digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class DeskSession:
    user: User
    csrf_token: str
    id_hash: str


@dataclass(frozen=True, slots=True)
class CookiePolicy:
    """``__Host-`` and Secure when the desk is public over https; a plain name over http
    (a desk on 127.0.0.1), where a browser would not send a Secure cookie back."""

    secure: bool

    @property
    def name(self) -> str:
        return "__Host-desk" if self.secure else "desk"

    @property
    def pre_name(self) -> str:
        return "__Host-desk-pre" if self.secure else "desk-pre"

    @classmethod
    def for_url(cls, public_url: str) -> CookiePolicy:
        return cls(secure=public_url.lower().startswith("https://"))


class Sessions:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.store = store
        self.idle = timedelta(minutes=settings.desk_idle_minutes)
        self.lifetime = timedelta(hours=settings.desk_session_hours)

    @property
    def max_age(self) -> int:
        return int(self.lifetime.total_seconds())

    def start(self, user: User) -> str:
        """A new session for ``user``; returns the id for the cookie (stored only hashed)."""
        session_id = secrets.token_urlsafe(TOKEN_BYTES)
        now = self.store.now()
        with self.store.engine.begin() as conn:
            desk_store.end_sessions_before(conn, now - self.idle, now - self.lifetime)
            desk_store.add_session(
                conn, digest(session_id), user.id, secrets.token_urlsafe(TOKEN_BYTES), now
            )
        return session_id

    def find(self, session_id: str | None) -> DeskSession | None:
        """The live session the cookie names; an unknown, expired or malformed one is none
        (and an expired one is deleted)."""
        if not session_id or len(session_id) > 100:
            return None
        id_hash = digest(session_id)
        now = self.store.now()
        with self.store.engine.begin() as conn:
            row = desk_store.find_session(conn, id_hash)
            if row is None:
                return None
            if now - row.last_seen_at > self.idle or now - row.created_at > self.lifetime:
                desk_store.end_session(conn, id_hash)
                return None
            if now - row.last_seen_at > TOUCH_EVERY:
                desk_store.touch_session(conn, id_hash, now)
        return DeskSession(row.user, row.csrf_token, id_hash)

    def end(self, session: DeskSession) -> None:
        with self.store.engine.begin() as conn:
            desk_store.end_session(conn, session.id_hash)
