"""The signed values of public sign-up: the form's ``started`` stamp and the confirmation link.

Both are itsdangerous signatures under the publication's secret key, each with a salt of its
own, so neither can stand in for the other or for an unsubscribe token.

- ``started`` signs the list's id and the time the form was shown. A form sent back without
  one, or with one that does not verify, sends nothing; one sent back too soon after it was
  shown is a robot's.
- A confirmation link signs (list id, address key, nonce) and the time it was made; it is
  good for ``NEWSLETTER_SIGNUP_CONFIRM_HOURS``, and only while the nonce is the request's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from itsdangerous import BadData, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

FORM_SALT = "newsletter.signup-form"
CONFIRM_SALT = "newsletter.signup-confirm"
#: How long a form page's ``started`` stays good: a reader who leaves the tab open over a
#: night may still send it; an older one is shown again to be sent once more.
FORM_MAX_SECONDS = 24 * 3600


def clocked(clock: Callable[[], float]) -> type[TimestampSigner]:
    """A ``TimestampSigner`` reading the time from ``clock`` (the store's, in tests)."""

    class ClockedSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock())

    return ClockedSigner


class FormStamps:
    """The ``started`` value of a sign-up form, and its age when it comes back."""

    def __init__(self, secret: str, clock: Callable[[], float]) -> None:
        self._signer = clocked(clock)(secret, salt=FORM_SALT)
        self._clock = clock

    def stamp(self, list_id: str) -> str:
        return self._signer.sign(list_id).decode("ascii")

    def age(self, value: str, list_id: str) -> float | None:
        """Seconds since the form was shown; None when ``value`` is not a good stamp for
        ``list_id`` (missing, altered, another list's, or older than a day)."""
        try:
            signed, when = self._signer.unsign(value, max_age=FORM_MAX_SECONDS,
                                               return_timestamp=True)
        except BadData:
            return None
        if signed.decode("utf-8", "replace") != list_id:
            return None
        return max(0.0, self._clock() - when.timestamp())


class LinkProblem(StrEnum):
    INVALID = "invalid"  # not ours, altered or cut short
    EXPIRED = "expired"
    USED = "used"  # confirmed already, or replaced by a newer link


@dataclass(frozen=True, slots=True)
class ConfirmLink:
    list_id: str
    email_key: str
    nonce: str


class ConfirmLinks:
    """Makes and reads the token of a confirmation link."""

    def __init__(self, secret: str, clock: Callable[[], float], max_hours: int) -> None:
        self._serializer = URLSafeTimedSerializer(
            secret, salt=CONFIRM_SALT, signer=clocked(clock)
        )
        self.max_seconds = max_hours * 3600

    def token(self, link: ConfirmLink) -> str:
        return str(self._serializer.dumps([link.list_id, link.email_key, link.nonce]))

    def read(self, token: str, list_id: str) -> ConfirmLink | LinkProblem:
        """The link ``token`` stands for, if it verifies and is for ``list_id``."""
        try:
            payload: Any = self._serializer.loads(token, max_age=self.max_seconds)
        except SignatureExpired:
            return LinkProblem.EXPIRED
        except BadData:
            return LinkProblem.INVALID
        if not (isinstance(payload, list) and len(payload) == 3
                and all(isinstance(part, str) for part in payload)):
            return LinkProblem.INVALID
        link = ConfirmLink(*payload)
        return link if link.list_id == list_id and link.nonce else LinkProblem.INVALID
