"""Which provider class serves each ``NEWSLETTER_PROVIDER`` name.

A provider's module is imported only when it is chosen: the SES one brings botocore, about
a twentieth of a second at every start of a process that sends through anything else.
"""

from __future__ import annotations

from importlib import import_module

from ...config import Settings
from ...errors import ConfigError
from ..base import Provider

#: Name → (module in this package, class).
PROVIDERS: dict[str, tuple[str, str]] = {
    "outbox": ("outbox", "OutboxProvider"),
    "smtp": ("smtp", "SmtpProvider"),
    "mailgun": ("mailgun", "MailgunProvider"),
    "postmark": ("postmark", "PostmarkProvider"),
    "sendgrid": ("sendgrid", "SendGridProvider"),
    "resend": ("resend", "ResendProvider"),
    "ses": ("ses", "SesProvider"),
    "brevo": ("brevo", "BrevoProvider"),
}


def provider_class(name: str) -> type[Provider]:
    try:
        module, class_name = PROVIDERS[name]
    except KeyError:
        raise ConfigError(f"NEWSLETTER_PROVIDER={name!r} has no delivery class installed") from None
    found: type[Provider] = getattr(import_module(f".{module}", __package__), class_name)
    return found


def make_provider(settings: Settings) -> Provider:
    """The configured provider, after checking its credentials are all set."""
    settings.require_provider_credentials()
    return provider_class(settings.provider)(settings)
