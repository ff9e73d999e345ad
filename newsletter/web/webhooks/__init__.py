"""Provider webhooks: one receiver per provider, each verifying its own kind of signature."""

from __future__ import annotations

from ...config import Settings
from .base import Clock, Received, Receiver, WebhookError, WebhookEvent
from .brevo import BrevoReceiver
from .mailgun import MailgunReceiver
from .postmark import PostmarkReceiver
from .resend import ResendReceiver
from .sendgrid import SendGridReceiver
from .ses import Fetcher, SesReceiver


def build_receivers(
    settings: Settings, clock: Clock, fetch: Fetcher | None = None
) -> dict[str, Receiver]:
    """Every provider's receiver; one whose secret is not configured refuses all requests."""
    receivers: list[Receiver] = [
        MailgunReceiver(settings, clock),
        SendGridReceiver(settings, clock),
        ResendReceiver(settings, clock),
        SesReceiver(settings, clock, fetch),
        PostmarkReceiver(settings, clock),
        BrevoReceiver(settings, clock),
    ]
    return {receiver.name: receiver for receiver in receivers}


__all__ = ["Fetcher", "Received", "Receiver", "WebhookError", "WebhookEvent", "build_receivers"]
