"""Postmark: no signature exists, so the webhook URL carries HTTP Basic credentials.

One event object per POST, told apart by ``RecordType``. Bounce records are numbered
(``ID``); the others are identified by a digest of their content.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...models import DeliveryStatus
from .base import (
    Headers,
    Receiver,
    WebhookEvent,
    as_items,
    bare_message_id,
    check_basic_auth,
    from_iso,
    load_json,
    payload_id,
    text_field,
)

BOUNCE_TYPES = {
    "HardBounce": DeliveryStatus.BOUNCED_HARD,
    "BadEmailAddress": DeliveryStatus.BOUNCED_HARD,
    "SoftBounce": DeliveryStatus.BOUNCED_SOFT,
    "Transient": DeliveryStatus.BOUNCED_SOFT,
    "DnsError": DeliveryStatus.BOUNCED_SOFT,
    "SpamComplaint": DeliveryStatus.COMPLAINED,
    "SpamNotification": DeliveryStatus.COMPLAINED,
    "Unsubscribe": DeliveryStatus.UNSUBSCRIBED,
}
SUPPRESSION_REASONS = {
    "HardBounce": DeliveryStatus.BOUNCED_HARD,
    "SpamComplaint": DeliveryStatus.COMPLAINED,
    "ManualSuppression": DeliveryStatus.UNSUBSCRIBED,
}
SIMPLE = {
    "Delivery": DeliveryStatus.DELIVERED,
    "Open": DeliveryStatus.OPENED,
    "Click": DeliveryStatus.CLICKED,
}
# RecordType -> (address field, time field)
FIELDS = {
    "Bounce": ("Email", "BouncedAt"),
    "SpamComplaint": ("Email", "BouncedAt"),
    "SubscriptionChange": ("Recipient", "ChangedAt"),
    "Delivery": ("Recipient", "DeliveredAt"),
    "Open": ("Recipient", "ReceivedAt"),
    "Click": ("Recipient", "ReceivedAt"),
}


class PostmarkReceiver(Receiver):
    name = "postmark"

    def authenticate(self, headers: Headers, body: bytes) -> str:
        s = self.settings
        check_basic_auth(headers, s.postmark_webhook_user, s.postmark_webhook_password, self.name)
        return ""

    def parse(self, headers: Headers, body: bytes) -> list[WebhookEvent]:
        events = []
        for item in as_items(load_json(body)):
            status = _status(item)
            if status is not None:
                events.append(self._event(item, status))
        return events

    def _event(self, item: Mapping[str, Any], status: DeliveryStatus) -> WebhookEvent:
        kind = str(item["RecordType"])
        address_field, time_field = FIELDS[kind]
        numbered = kind in ("Bounce", "SpamComplaint") and item.get("ID") is not None
        return WebhookEvent(
            provider=self.name,
            event_id=f"{kind}:{item['ID']}" if numbered else payload_id(item),
            type=status,
            email=text_field(item, address_field),
            provider_message_id=bare_message_id(item.get("MessageID")),
            at=from_iso(item.get(time_field)),
            detail=_detail(item),
        )


def _status(item: Mapping[str, Any]) -> DeliveryStatus | None:
    kind = item.get("RecordType")
    if kind in ("Bounce", "SpamComplaint"):
        return BOUNCE_TYPES.get(str(item.get("Type", kind)))
    if kind == "SubscriptionChange":
        if item.get("SuppressSending") is not True:
            return None  # a reactivation: the operator lifts local suppressions by hand
        return SUPPRESSION_REASONS.get(str(item.get("SuppressionReason")))
    return SIMPLE.get(str(kind))


def _detail(item: Mapping[str, Any]) -> str:
    for key in ("Details", "Description", "OriginalLink"):
        if item.get(key):
            return str(item[key])
    return ""
