"""Mailgun: HMAC-SHA256 of ``timestamp + token`` with the webhook signing key, one event per POST.

Mailgun leaves freshness and replay checks to the receiver: a timestamp older than
``MAX_AGE`` is refused and the token is returned as a replay token, which the web layer
records in ``seen_tokens`` in the same transaction as the event.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from ...models import DeliveryStatus
from .base import (
    Headers,
    Receiver,
    WebhookAuthError,
    WebhookEvent,
    WebhookPayloadError,
    bare_message_id,
    check_timestamp,
    field,
    from_epoch,
    load_json,
    text_field,
)

SIMPLE = {
    "delivered": DeliveryStatus.DELIVERED,
    "complained": DeliveryStatus.COMPLAINED,
    "unsubscribed": DeliveryStatus.UNSUBSCRIBED,
    "opened": DeliveryStatus.OPENED,
    "clicked": DeliveryStatus.CLICKED,
}
FAILED = {"permanent": DeliveryStatus.BOUNCED_HARD, "temporary": DeliveryStatus.BOUNCED_SOFT}


class MailgunReceiver(Receiver):
    name = "mailgun"

    def authenticate(self, headers: Headers, body: bytes) -> str:
        key = self.settings.mailgun_webhook_signing_key
        if not key:
            raise WebhookAuthError("MAILGUN_WEBHOOK_SIGNING_KEY is not configured")
        timestamp, token, signature = _signature_block(body)
        expected = hmac.new(key.reveal().encode(), (timestamp + token).encode(), hashlib.sha256)
        if not hmac.compare_digest(expected.hexdigest(), signature.lower()):
            raise WebhookAuthError("invalid signature")
        try:
            check_timestamp(from_epoch(timestamp), self.clock())
        except WebhookPayloadError as exc:
            raise WebhookAuthError("invalid signature timestamp") from exc
        return token

    def parse(self, headers: Headers, body: bytes) -> list[WebhookEvent]:
        data = field(load_json(body), "event-data")
        if not isinstance(data, Mapping):
            raise WebhookPayloadError("'event-data' is not an object")
        status = _status(data)
        return [] if status is None else [self._event(data, status)]

    def _event(self, data: Mapping[str, Any], status: DeliveryStatus) -> WebhookEvent:
        return WebhookEvent(
            provider=self.name,
            event_id=text_field(data, "id"),
            type=status,
            email=text_field(data, "recipient"),
            provider_message_id=_message_id(data),
            at=from_epoch(field(data, "timestamp")),
            detail=_detail(data),
        )


def _signature_block(body: bytes) -> tuple[str, str, str]:
    """The signed values; a body without them cannot be verified, so it is refused as such."""
    try:
        block = field(load_json(body), "signature")
        values = tuple(block[k] for k in ("timestamp", "token", "signature"))
    except (WebhookPayloadError, TypeError, KeyError) as exc:
        raise WebhookAuthError("no Mailgun signature in the request") from exc
    if not all(isinstance(v, str | int) for v in values):
        raise WebhookAuthError("malformed Mailgun signature")
    timestamp, token, signature = (str(v) for v in values)
    return timestamp, token, signature


def _status(data: Mapping[str, Any]) -> DeliveryStatus | None:
    event = data.get("event")
    if event == "failed":
        return FAILED.get(str(data.get("severity", "")))
    return SIMPLE.get(str(event))


def _message_id(data: Mapping[str, Any]) -> str:
    message = data.get("message")
    headers = message.get("headers") if isinstance(message, Mapping) else None
    return bare_message_id(headers.get("message-id")) if isinstance(headers, Mapping) else ""


def _detail(data: Mapping[str, Any]) -> str:
    status = data.get("delivery-status")
    if isinstance(status, Mapping):
        text = status.get("description") or status.get("message") or ""
        if text:
            return str(text)
    return str(data.get("reason") or data.get("url") or "")
