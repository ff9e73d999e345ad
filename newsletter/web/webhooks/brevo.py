"""Brevo (Sendinblue) transactional webhooks: HTTP Basic credentials, no signature.

One event object per POST, or an array when Brevo batches them. Brevo's ``id`` is the
webhook's, not the event's, so events are identified by a digest of their content.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ...models import DeliveryStatus
from .base import (
    Headers,
    Receiver,
    WebhookEvent,
    WebhookPayloadError,
    as_items,
    bare_message_id,
    check_basic_auth,
    from_epoch,
    from_iso,
    load_json,
    payload_id,
    text_field,
)

EVENTS = {
    "delivered": DeliveryStatus.DELIVERED,
    "hard_bounce": DeliveryStatus.BOUNCED_HARD,
    "invalid_email": DeliveryStatus.BOUNCED_HARD,
    # Brevo blocks an address it has already blocklisted: keep it off our lists too.
    "blocked": DeliveryStatus.BOUNCED_HARD,
    "soft_bounce": DeliveryStatus.BOUNCED_SOFT,
    "spam": DeliveryStatus.COMPLAINED,
    "complaint": DeliveryStatus.COMPLAINED,
    "unsubscribed": DeliveryStatus.UNSUBSCRIBED,
    "unsubscribe": DeliveryStatus.UNSUBSCRIBED,
    "opened": DeliveryStatus.OPENED,
    "unique_opened": DeliveryStatus.OPENED,
    "proxy_open": DeliveryStatus.OPENED,
    "click": DeliveryStatus.CLICKED,
}


class BrevoReceiver(Receiver):
    name = "brevo"

    def authenticate(self, headers: Headers, body: bytes) -> str:
        s = self.settings
        check_basic_auth(headers, s.brevo_webhook_user, s.brevo_webhook_password, self.name)
        return ""

    def parse(self, headers: Headers, body: bytes) -> list[WebhookEvent]:
        return [
            self._event(item, EVENTS[str(item.get("event"))])
            for item in as_items(load_json(body))
            if str(item.get("event")) in EVENTS
        ]

    def _event(self, item: Mapping[str, Any], status: DeliveryStatus) -> WebhookEvent:
        return WebhookEvent(
            provider=self.name,
            event_id=payload_id(item),
            type=status,
            email=text_field(item, "email"),
            provider_message_id=bare_message_id(item.get("message-id")),
            at=_when(item),
            detail=str(item.get("reason") or item.get("link") or ""),
        )


def _when(item: Mapping[str, Any]) -> datetime:
    """``ts_epoch`` is milliseconds, ``ts_event`` seconds; older payloads only have ``date``."""
    if item.get("ts_epoch") is not None:
        return from_epoch(item["ts_epoch"], milliseconds=True)
    if item.get("ts_event") is not None:
        return from_epoch(item["ts_event"])
    if item.get("date"):
        return from_iso(item["date"])
    raise WebhookPayloadError("event has no time ('ts_epoch', 'ts_event' or 'date')")
