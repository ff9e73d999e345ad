"""What to tell the operator when a provider refuses: the setting to check, and what to run.

A refused key pauses the issue, and a provider that cannot be reached at all pauses it
after the retries: either way the fix is a setting. The message names it (the variable of
the credentials, or of the provider's address) and the command that carries on afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

from ..errors import ProviderAuthError


@dataclass(frozen=True, slots=True)
class ProviderVariables:
    title: str  # as the provider names itself
    credentials: tuple[str, ...]
    address: tuple[str, ...]  # where it is reached


VARIABLES: dict[str, ProviderVariables] = {
    "mailgun": ProviderVariables("Mailgun", ("MAILGUN_API_KEY",), ("MAILGUN_BASE_URL",)),
    "postmark": ProviderVariables("Postmark", ("POSTMARK_SERVER_TOKEN",), ("POSTMARK_BASE_URL",)),
    "sendgrid": ProviderVariables("SendGrid", ("SENDGRID_API_KEY",), ("SENDGRID_BASE_URL",)),
    "resend": ProviderVariables("Resend", ("RESEND_API_KEY",), ("RESEND_BASE_URL",)),
    "ses": ProviderVariables(
        "Amazon SES", ("SES_ACCESS_KEY_ID", "SES_SECRET_ACCESS_KEY"), ("SES_REGION", "SES_BASE_URL")
    ),
    "brevo": ProviderVariables("Brevo", ("BREVO_API_KEY",), ("BREVO_BASE_URL",)),
    "smtp": ProviderVariables(
        "The SMTP server", ("SMTP_USERNAME", "SMTP_PASSWORD"), ("SMTP_HOST", "SMTP_PORT")
    ),
}
#: The HTTP answers that mean "these credentials are not accepted".
CREDENTIALS_REFUSED = frozenset({401, 403})


def resume_command(issue_id: int) -> str:
    return f"newsletter issue resume {issue_id}"


def refused(exc: ProviderAuthError, issue_id: int) -> str:
    """The pause reason for a provider that refused the credentials or the account."""
    then = f"then run: {resume_command(issue_id)}"
    known = VARIABLES.get(exc.provider)
    if known is None:
        return f"{exc}; put that right, {then}"
    words = _own_words(exc)
    if exc.status in CREDENTIALS_REFUSED:
        answer = f"{exc.status} {HTTPStatus(exc.status).phrase}"
        return (f"{known.title} refused the credentials ({answer}: {words}): "
                f"check {_either(known.credentials)}, {then}")
    if exc.status is None and exc.provider == "smtp":  # only a refused login is an auth error
        check = _either(known.credentials)
        return f"{known.title} refused the login ({words}): check {check}, {then}"
    return f"{exc}; put that right, {then}"


def unreachable(provider: str, url: str, why: str) -> str:
    """A request that never reached the provider at ``url``: which variable says where it is."""
    parts = urlsplit(url)
    where = f"{parts.scheme}://{parts.netloc}" if parts.netloc else url
    known = VARIABLES.get(provider)
    check = f": check {_either(known.address)}" if known else ""
    return f"could not connect to {where}: {why}{check}"


def _own_words(exc: ProviderAuthError) -> str:
    """What the provider said, without the ``provider: HTTP nnn:`` the error puts before it."""
    text = str(exc)
    for prefix in (exc.provider, f"HTTP {exc.status}" if exc.status else ""):
        if prefix and text.startswith(f"{prefix}: "):
            text = text[len(prefix) + 2:]
    return text


def _either(names: tuple[str, ...]) -> str:
    return " and ".join(names)
