"""SendGrid v3 Mail Send: one personalization per recipient, merged on SendGrid's side.

The subject and bodies carry substitution tags (``%nl.x%``, ``%nl.h_x%`` for the
HTML-escaped variant) that each personalization's ``substitutions`` fill in. SendGrid does
not substitute in headers, so each personalization carries its own List-Unsubscribe.
``custom_args`` carry ``nl_batch`` (whole request) and ``nl_rid`` (per personalization);
the Event Webhook echoes them on every event.
"""

from __future__ import annotations

import time
from typing import Any

import requests

from ..base import (
    BatchRecipient,
    BatchResult,
    HttpProvider,
    HttpRequest,
    OutgoingBatch,
    PreparedIssue,
    bounded_wait,
)
from ..variables import batch_variables


def _plain(field: str) -> str:
    return f"%nl.{field}%"


def _escaped(field: str) -> str:
    return f"%nl.h_{field}%"


class SendGridProvider(HttpProvider):
    name = "sendgrid"
    #: SendGrid allows 1,000 personalizations and 1,000 recipients a request; one each here.
    max_batch = 1000

    def build_request(self, issue: PreparedIssue, batch: OutgoingBatch) -> HttpRequest:
        variables = batch_variables(issue, batch, _plain)
        personalizations = [
            _personalization(issue, r, values)
            for r, values in zip(batch.recipients, variables.per_recipient, strict=True)
        ]
        payload: dict[str, Any] = {
            "personalizations": personalizations,
            "from": _address(issue.from_email, issue.from_name),
            "subject": issue.subject.with_markers(_plain),
            "content": [
                {"type": "text/plain", "value": issue.text.with_markers(_plain)},
                {"type": "text/html", "value": variables.html(issue, _plain, _escaped)},
            ],
            "headers": issue.shared_headers(),
            "custom_args": {"nl_batch": batch.idempotency_key, "nl_issue": str(issue.issue_id)},
        }
        if issue.reply_to:
            payload["reply_to"] = {"email": issue.reply_to}
        if issue.tag:
            payload["categories"] = [issue.tag]
        headers = {"Authorization": f"Bearer {self.settings.sendgrid_api_key.reveal()}"}
        url = f"{self.settings.sendgrid_base_url}/v3/mail/send"
        return HttpRequest("POST", url, headers=headers, json=payload)

    def parse_response(self, batch: OutgoingBatch, response: requests.Response) -> BatchResult:
        if response.status_code != 202:
            raise ValueError(f"expected 202 Accepted, got {response.status_code}")
        return BatchResult.all_sent(batch, response.headers.get("X-Message-Id", ""))

    def wait_asked(self, response: requests.Response) -> float | None:
        # SendGrid announces no Retry-After; its rate-limit reset is an epoch time.
        asked = super().wait_asked(response)
        reset = response.headers.get("X-RateLimit-Reset", "")
        return asked if asked is not None else _reset_delay(reset)


def _personalization(
    issue: PreparedIssue, recipient: BatchRecipient, substitutions: dict[str, str]
) -> dict[str, Any]:
    return {
        "to": [_address(recipient.email, recipient.name)],
        "substitutions": substitutions,
        "headers": {"List-Unsubscribe": issue.list_unsubscribe.render(recipient.values)},
        "custom_args": {"nl_rid": str(recipient.recipient_id)},
    }


def _address(email: str, name: str) -> dict[str, str]:
    return {"email": email, "name": name} if name else {"email": email}


def _reset_delay(raw: str) -> float | None:
    try:
        return bounded_wait(float(raw) - time.time())
    except ValueError:
        return None
