"""Resend: Svix-signed requests (``svix-id``, ``svix-timestamp``, ``svix-signature``).

The ``svix`` library checks the HMAC and the five-minute window; the ``svix-id`` header is
the event id (Svix keeps it across retries), suffixed per recipient when a message had several.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from svix.webhooks import Webhook, WebhookVerificationError

from ...config import Settings
from ...errors import ConfigError
from ...models import DeliveryStatus
from .base import (
    Clock,
    Headers,
    Receiver,
    WebhookAuthError,
    WebhookEvent,
    WebhookPayloadError,
    bare_message_id,
    field,
    from_iso,
    load_json,
    text_field,
)

SIMPLE = {
    "email.delivered": DeliveryStatus.DELIVERED,
    "email.complained": DeliveryStatus.COMPLAINED,
    "email.opened": DeliveryStatus.OPENED,
    "email.clicked": DeliveryStatus.CLICKED,
}


class ResendReceiver(Receiver):
    name = "resend"

    def __init__(self, settings: Settings, clock: Clock) -> None:
        super().__init__(settings, clock)
        secret = settings.resend_webhook_secret
        self._webhook = _webhook(secret.reveal()) if secret else None

    def authenticate(self, headers: Headers, body: bytes) -> str:
        if self._webhook is None:
            raise WebhookAuthError("RESEND_WEBHOOK_SECRET is not configured")
        try:
            self._webhook.verify(body, dict(headers))
        except (WebhookVerificationError, ValueError) as exc:  # ValueError: undecodable parts
            raise WebhookAuthError(f"invalid signature: {exc}") from exc
        return ""

    def parse(self, headers: Headers, body: bytes) -> list[WebhookEvent]:
        document = load_json(body)
        if not isinstance(document, Mapping):
            raise WebhookPayloadError("Resend posts one event object")
        status = _status(document)
        if status is None:
            return []
        data = field(document, "data")
        recipients = _recipients(data)
        svix_id = headers.get("svix-id", "")
        return [
            WebhookEvent(
                provider=self.name,
                event_id=svix_id if len(recipients) == 1 else f"{svix_id}:{email.lower()}",
                type=status,
                email=email,
                provider_message_id=bare_message_id(text_field(data, "email_id")),
                at=from_iso(document.get("created_at") or data.get("created_at")),
                detail=_detail(data),
            )
            for email in recipients
        ]


def _webhook(secret: str) -> Webhook:
    """Checked here because ``svix`` quietly skips characters that are not base64."""
    prefix, _, key = secret.partition("_")
    try:
        decoded = base64.b64decode(key + "=" * (-len(key) % 4), validate=True)
        valid = prefix == "whsec" and bool(decoded)
    except binascii.Error:
        valid = False
    if not valid:
        raise ConfigError("RESEND_WEBHOOK_SECRET is not a Svix signing secret (whsec_…)")
    return Webhook(secret)


def _status(document: Mapping[str, Any]) -> DeliveryStatus | None:
    kind = document.get("type")
    if kind == "email.bounced":
        data = document.get("data")
        bounce = data.get("bounce") if isinstance(data, Mapping) else None
        transient = isinstance(bounce, Mapping) and bounce.get("type") == "Transient"
        return DeliveryStatus.BOUNCED_SOFT if transient else DeliveryStatus.BOUNCED_HARD
    return SIMPLE.get(str(kind))


def _recipients(data: Any) -> list[str]:
    to = field(data, "to")
    addresses = [to] if isinstance(to, str) else to
    if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
        raise WebhookPayloadError("event field 'data.to' is not a list of addresses")
    return addresses


def _detail(data: Mapping[str, Any]) -> str:
    bounce = data.get("bounce")
    if isinstance(bounce, Mapping):
        return str(bounce.get("message") or bounce.get("subType") or "")
    click = data.get("click")
    return str(click.get("link", "")) if isinstance(click, Mapping) else ""
