"""Signed, per-recipient unsubscribe tokens (itsdangerous HMAC signatures).

A token names the address and the list it unsubscribes from; it cannot be forged or
enumerated without the secret key, and a changed byte makes it invalid.
"""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

from .errors import NewsletterError

SALT = "newsletter.unsubscribe.v1"


class BadTokenError(NewsletterError, ValueError):
    """The token was not signed by this publication's key, or was altered."""


@dataclass(frozen=True, slots=True)
class UnsubscribeToken:
    email: str
    list_id: str


class TokenSigner:
    def __init__(self, secret_key: str) -> None:
        if not secret_key:
            raise ValueError("a secret key is needed to sign unsubscribe tokens")
        self._serializer = URLSafeSerializer(secret_key, salt=SALT)

    def sign(self, email: str, list_id: str) -> str:
        return str(self._serializer.dumps([email, list_id]))

    def verify(self, token: str) -> UnsubscribeToken:
        try:
            email, list_id = self._serializer.loads(token)
        except (BadSignature, ValueError, TypeError) as exc:
            raise BadTokenError("invalid unsubscribe token") from exc
        if not isinstance(email, str) or not isinstance(list_id, str):
            raise BadTokenError("invalid unsubscribe token")
        return UnsubscribeToken(email, list_id)

    def __repr__(self) -> str:
        return "TokenSigner(<secret>)"
