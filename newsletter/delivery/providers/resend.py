"""Resend: up to 100 fully merged emails per ``/emails/batch`` call, idempotent.

Resend has no per-recipient merge, so each email is merged here. The batch's idempotency
key goes in the ``Idempotency-Key`` header: Resend keeps it 24 hours and answers a repeated
request with the original ids without sending again, which makes a batch of unknown
outcome safe to resend. Tags carry ``nl_batch`` and ``nl_rid`` for webhooks.
"""

from __future__ import annotations

import re
from typing import Any

import requests

from ...errors import PermanentProviderError, ProviderAuthError, TransientProviderError
from ...models import DeliveryStatus
from ..base import (
    BatchRecipient,
    BatchResult,
    HttpProvider,
    HttpRequest,
    OutgoingBatch,
    PreparedIssue,
    RecipientResult,
    error_message,
    retry_after_seconds,
)

#: Tag names and values may hold ASCII letters, digits, underscores and dashes only.
TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
#: A concurrent request with the same key is still running: try again shortly.
CONCURRENT_RETRY_SECONDS = 1.0


def tag_value(raw: str) -> str:
    return TAG_UNSAFE.sub("_", raw)[:256]


class ResendProvider(HttpProvider):
    name = "resend"
    max_batch = 100
    idempotent = True
    #: "2 requests per second" per team by default; a raised limit goes in the settings.
    default_requests_per_second = 2.0

    def build_request(self, issue: PreparedIssue, batch: OutgoingBatch) -> HttpRequest:
        emails = [_email(issue, batch, r) for r in batch.recipients]
        headers = {
            "Authorization": f"Bearer {self.settings.resend_api_key.reveal()}",
            "Idempotency-Key": batch.idempotency_key,
        }
        url = f"{self.settings.resend_base_url}/emails/batch"
        return HttpRequest("POST", url, headers=headers, json=emails)

    def parse_response(self, batch: OutgoingBatch, response: requests.Response) -> BatchResult:
        data = response.json()["data"]
        if len(data) != len(batch.recipients):
            raise ValueError(f"expected {len(batch.recipients)} ids, got {len(data)}")
        return BatchResult([
            RecipientResult(r.email, DeliveryStatus.SENT, str(item["id"]))
            for r, item in zip(batch.recipients, data, strict=True)
        ])

    def raise_for_error(self, response: requests.Response) -> None:
        if response.status_code < 300:
            return
        kind = _error_name(response)
        kwargs: dict[str, Any] = {
            "provider": self.name, "status": response.status_code, "body": response.text,
            "retry_after": retry_after_seconds(response),
        }
        message = f"{kind}: {error_message(response)}"
        if kind == "concurrent_idempotent_requests":
            kwargs["retry_after"] = kwargs["retry_after"] or CONCURRENT_RETRY_SECONDS
            raise TransientProviderError(message, **kwargs)
        if kind == "daily_quota_exceeded":
            # The plan's daily quota: retrying within minutes only burns attempts.
            raise ProviderAuthError(message, **kwargs)
        if kind == "invalid_idempotent_request":
            raise PermanentProviderError(message, **kwargs)
        super().raise_for_error(response)


def _email(issue: PreparedIssue, batch: OutgoingBatch, recipient: BatchRecipient) -> dict[str, Any]:
    copy = issue.merge(recipient.values)
    email: dict[str, Any] = {
        "from": issue.from_header,
        "to": [recipient.email],
        "subject": copy.subject,
        "html": copy.html,
        "text": copy.text,
        "headers": dict(copy.headers),
        "tags": [
            {"name": "nl_batch", "value": tag_value(batch.idempotency_key)},
            {"name": "nl_issue", "value": str(issue.issue_id)},
            {"name": "nl_rid", "value": str(recipient.recipient_id)},
        ],
    }
    if issue.reply_to:
        email["reply_to"] = [issue.reply_to]
    return email


def _error_name(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("name", "")) if isinstance(body, dict) else ""
