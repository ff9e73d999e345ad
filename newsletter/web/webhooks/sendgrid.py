"""SendGrid Event Webhook: ECDSA P-256 / SHA-256 over ``timestamp + raw body``, a JSON array.

The verification key is the one SendGrid shows under the signed-webhook settings: base64
DER (SubjectPublicKeyInfo), or the same wrapped as PEM.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

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
    as_items,
    check_timestamp,
    from_epoch,
    load_json,
    text_field,
)

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

SIMPLE = {
    "delivered": DeliveryStatus.DELIVERED,
    "spamreport": DeliveryStatus.COMPLAINED,
    "unsubscribe": DeliveryStatus.UNSUBSCRIBED,
    "group_unsubscribe": DeliveryStatus.UNSUBSCRIBED,
    "open": DeliveryStatus.OPENED,
    "click": DeliveryStatus.CLICKED,
}
# A "blocked" bounce is the receiving server refusing for now (reputation, rate): soft.
BOUNCE_TYPES = {"bounce": DeliveryStatus.BOUNCED_HARD, "blocked": DeliveryStatus.BOUNCED_SOFT}
# SendGrid drops mail to addresses on its own suppression lists; mirror those locally.
DROP_REASONS = {
    "bounced address": DeliveryStatus.BOUNCED_HARD,
    "invalid": DeliveryStatus.BOUNCED_HARD,
    "spam reporting address": DeliveryStatus.COMPLAINED,
    "unsubscribed address": DeliveryStatus.UNSUBSCRIBED,
}


def load_public_key(configured: str) -> ec.EllipticCurvePublicKey:
    """The verification key from its base64-DER or PEM form; it must be a P-256 key."""
    text = configured.strip()
    try:
        if "BEGIN PUBLIC KEY" in text:
            key = load_pem_public_key(text.encode())
        else:
            key = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"SENDGRID_WEBHOOK_PUBLIC_KEY is not a public key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ConfigError("SENDGRID_WEBHOOK_PUBLIC_KEY must be an ECDSA P-256 key")
    return key


class SendGridReceiver(Receiver):
    name = "sendgrid"

    def __init__(self, settings: Settings, clock: Clock) -> None:
        super().__init__(settings, clock)
        configured = settings.sendgrid_webhook_public_key
        self._key = load_public_key(configured) if configured else None

    def authenticate(self, headers: Headers, body: bytes) -> str:
        if self._key is None:
            raise WebhookAuthError("SENDGRID_WEBHOOK_PUBLIC_KEY is not configured")
        signature, timestamp = headers.get(SIGNATURE_HEADER), headers.get(TIMESTAMP_HEADER)
        if not signature or not timestamp:
            raise WebhookAuthError("missing SendGrid signature headers")
        try:
            der = base64.b64decode(signature, validate=True)
            self._key.verify(der, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
            check_timestamp(from_epoch(timestamp), self.clock())
        except (binascii.Error, InvalidSignature, WebhookPayloadError) as exc:
            raise WebhookAuthError("invalid signature") from exc
        return ""

    def parse(self, headers: Headers, body: bytes) -> list[WebhookEvent]:
        document = load_json(body)
        if not isinstance(document, list):
            raise WebhookPayloadError("SendGrid posts a JSON array of events")
        events = []
        for item in as_items(document):
            status = _status(item)
            if status is not None:
                events.append(self._event(item, status))
        return events

    def _event(self, item: Mapping[str, Any], status: DeliveryStatus) -> WebhookEvent:
        return WebhookEvent(
            provider=self.name,
            event_id=text_field(item, "sg_event_id"),
            type=status,
            email=text_field(item, "email"),
            provider_message_id=_message_id(item.get("sg_message_id")),
            at=from_epoch(item.get("timestamp")),
            detail=str(item.get("reason") or item.get("url") or ""),
        )


def _status(item: Mapping[str, Any]) -> DeliveryStatus | None:
    event = str(item.get("event", ""))
    if event == "bounce":
        return BOUNCE_TYPES.get(str(item.get("type", "bounce")))
    if event == "dropped":
        return DROP_REASONS.get(str(item.get("reason", "")).strip().lower())
    return SIMPLE.get(event)


def _message_id(value: Any) -> str:
    """``sg_message_id`` is the ``X-Message-Id`` the send returned plus a ``.filter…`` suffix."""
    return str(value or "").split(".", 1)[0]
