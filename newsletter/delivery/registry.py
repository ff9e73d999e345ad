"""Which provider class serves each ``NEWSLETTER_PROVIDER`` name."""

from __future__ import annotations

from ..config import Settings
from ..errors import ConfigError
from .base import Provider
from .brevo import BrevoProvider
from .mailgun import MailgunProvider
from .outbox import OutboxProvider
from .postmark import PostmarkProvider
from .resend import ResendProvider
from .sendgrid import SendGridProvider
from .ses import SesProvider
from .smtp import SmtpProvider

PROVIDERS: dict[str, type[Provider]] = {
    "outbox": OutboxProvider,
    "smtp": SmtpProvider,
    "mailgun": MailgunProvider,
    "postmark": PostmarkProvider,
    "sendgrid": SendGridProvider,
    "resend": ResendProvider,
    "ses": SesProvider,
    "brevo": BrevoProvider,
}


def make_provider(settings: Settings) -> Provider:
    """The configured provider, after checking its credentials are all set."""
    settings.require_provider_credentials()
    try:
        provider_class = PROVIDERS[settings.provider]
    except KeyError:
        raise ConfigError(
            f"NEWSLETTER_PROVIDER={settings.provider!r} has no delivery class installed"
        ) from None
    return provider_class(settings)
