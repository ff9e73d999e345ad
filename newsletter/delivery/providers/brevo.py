"""Brevo: up to 1,000 message versions per ``/v3/smtp/email`` call, merged by Brevo.

Every recipient gets a version of its own, so its params, subject, List-Unsubscribe and
``X-Mailin-custom`` metadata (``nl_batch``, ``nl_rid``) are its own. The bodies refer to
``{{ params.x }}`` (``{{ params.h_x }}`` for the HTML-escaped variant). The batch's
idempotency key goes in the body's ``headers.idempotencyKey``; Brevo wants a UUID there,
so other keys are turned into a stable UUIDv5 of themselves.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import requests

from ...models import DeliveryStatus
from ..base import (
    BatchRecipient,
    BatchResult,
    HttpProvider,
    HttpRequest,
    OutgoingBatch,
    PreparedIssue,
    RecipientResult,
    bounded_wait,
)
from ..variables import batch_variables

KEY_NAMESPACE = uuid.UUID("5d0c7b1e-4c1f-5a39-9f4e-6e65776c6574")


def _plain(field: str) -> str:
    return f"{{{{ params.{field} }}}}"


def _escaped(field: str) -> str:
    return f"{{{{ params.h_{field} }}}}"


def idempotency_uuid(key: str) -> str:
    """``key`` itself when it is a UUID, else a UUID derived from it (same key, same UUID)."""
    try:
        return str(uuid.UUID(key))
    except ValueError:
        return str(uuid.uuid5(KEY_NAMESPACE, key))


class BrevoProvider(HttpProvider):
    name = "brevo"
    max_batch = 1000  # "up to 1000 message versions" per call; one recipient per version
    idempotent = True
    #: Batch sending (``messageVersions``) takes "up to 100 calls per minute".
    default_requests_per_second = 100 / 60

    def build_request(self, issue: PreparedIssue, batch: OutgoingBatch) -> HttpRequest:
        headers = issue.shared_headers()
        headers["idempotencyKey"] = idempotency_uuid(batch.idempotency_key)
        variables = batch_variables(issue, batch)
        versions = [
            _version(issue, batch, r, params)
            for r, params in zip(batch.recipients, variables.per_recipient, strict=True)
        ]
        payload: dict[str, Any] = {
            "sender": _contact(issue.from_email, issue.from_name),
            "subject": issue.subject.with_markers(_plain),
            "htmlContent": variables.html(issue, _plain, _escaped),
            "textContent": issue.text.with_markers(_plain),
            "headers": headers,
            "messageVersions": versions,
        }
        if issue.reply_to:
            payload["replyTo"] = {"email": issue.reply_to}
        if issue.tag:
            payload["tags"] = [issue.tag]
        auth = {"api-key": self.settings.brevo_api_key.reveal(), "Accept": "application/json"}
        url = f"{self.settings.brevo_base_url}/v3/smtp/email"
        return HttpRequest("POST", url, headers=auth, json=payload)

    def parse_response(self, batch: OutgoingBatch, response: requests.Response) -> BatchResult:
        ids = response.json()["messageIds"]
        if len(ids) != len(batch.recipients):
            raise ValueError(f"expected {len(batch.recipients)} message ids, got {len(ids)}")
        return BatchResult(
            [
                RecipientResult(r.email, DeliveryStatus.SENT, str(message_id))
                for r, message_id in zip(batch.recipients, ids, strict=True)
            ]
        )

    def wait_asked(self, response: requests.Response) -> float | None:
        # Brevo sends no Retry-After; its reset header counts seconds.
        asked = super().wait_asked(response)
        reset = response.headers.get("x-sib-ratelimit-reset", "")
        return asked if asked is not None else _seconds(reset)


def _version(
    issue: PreparedIssue, batch: OutgoingBatch, recipient: BatchRecipient, params: dict[str, str]
) -> dict[str, Any]:
    metadata = {
        "nl_batch": batch.idempotency_key,
        "nl_issue": str(issue.issue_id),
        "nl_rid": str(recipient.recipient_id),
    }
    return {
        "to": [_contact(recipient.email, recipient.name)],
        "params": params,
        "subject": issue.subject.render(recipient.values),
        "headers": {
            "List-Unsubscribe": issue.list_unsubscribe.render(recipient.values),
            "X-Mailin-custom": json.dumps(metadata, separators=(",", ":")),
        },
    }


def _contact(email: str, name: str) -> dict[str, str]:
    return {"email": email, "name": name} if name else {"email": email}


def _seconds(raw: str) -> float | None:
    try:
        return bounded_wait(float(raw))
    except ValueError:
        return None
