"""Postmark: up to 500 fully merged messages per ``/email/batch`` call.

Postmark merges nothing on its side without stored templates, so every copy is merged here
(``PreparedIssue.merge``). The batch answers HTTP 200 even when items fail: each item's
``ErrorCode`` decides that recipient's fate. ``Metadata`` carries ``nl_batch`` and
``nl_rid``; the outbound message search can filter on one metadata field, which is how a
batch of unknown outcome is reconciled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import requests

from ...errors import PermanentProviderError, ProviderAuthError, TransientProviderError
from ...models import DeliveryStatus, SuppressionReason
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

SENT = 0
#: Codes that refuse the account or the server token, not one message.
ACCOUNT_CODES = frozenset({10, 400, 401, 405, 412, 413})
INACTIVE_RECIPIENT = 406
RATE_LIMITED = 429
MAINTENANCE = 100
SEARCH_PAGE_SIZE = 500


class PostmarkProvider(HttpProvider):
    name = "postmark"
    max_batch = 500

    @property
    def headers(self) -> dict[str, str]:
        return {
            "Accept": "application/json",
            "X-Postmark-Server-Token": self.settings.postmark_server_token.reveal(),
        }

    def build_request(self, issue: PreparedIssue, batch: OutgoingBatch) -> HttpRequest:
        messages = [self._message(issue, batch, r) for r in batch.recipients]
        url = f"{self.settings.postmark_base_url}/email/batch"
        return HttpRequest("POST", url, headers=self.headers, json=messages)

    def _message(
        self, issue: PreparedIssue, batch: OutgoingBatch, recipient: BatchRecipient
    ) -> dict[str, Any]:
        copy = issue.merge(recipient.values)
        message: dict[str, Any] = {
            "From": issue.from_header,
            "To": recipient.to_header,
            "Subject": copy.subject,
            "HtmlBody": copy.html,
            "TextBody": copy.text,
            "Headers": [{"Name": k, "Value": v} for k, v in copy.headers.items()],
            "Metadata": {
                "nl_batch": batch.idempotency_key,
                "nl_issue": str(issue.issue_id),
                "nl_rid": str(recipient.recipient_id),
            },
            "MessageStream": self._stream(issue),
        }
        if issue.reply_to:
            message["ReplyTo"] = issue.reply_to
        if issue.tag:
            message["Tag"] = issue.tag
        return message

    def _stream(self, issue: PreparedIssue) -> str:
        if issue.transactional:
            return self.settings.postmark_transactional_stream
        return self.settings.postmark_message_stream

    def parse_response(self, batch: OutgoingBatch, response: requests.Response) -> BatchResult:
        items = response.json()
        if not isinstance(items, list) or len(items) != len(batch.recipients):
            raise ValueError(f"expected {len(batch.recipients)} results, got {response.text[:200]}")
        codes = [int(item.get("ErrorCode", -1)) for item in items]
        if SENT not in codes and ACCOUNT_CODES.intersection(codes):
            raise ProviderAuthError(
                str(items[0].get("Message", "account refused")),
                provider=self.name, status=response.status_code, body=response.text,
            )
        return BatchResult(
            [_item_result(r, item) for r, item in zip(batch.recipients, items, strict=True)]
        )

    def raise_for_error(self, response: requests.Response) -> None:
        if response.status_code != 422:
            super().raise_for_error(response)
            return
        code = _error_code(response)
        kwargs: dict[str, Any] = {
            "provider": self.name, "status": 422, "body": response.text,
            "retry_after": retry_after_seconds(response),
        }
        message = f"ErrorCode {code}: {error_message(response)}"
        if code in ACCOUNT_CODES:
            raise ProviderAuthError(message, **kwargs)
        if code in (RATE_LIMITED, MAINTENANCE):
            raise TransientProviderError(message, **kwargs)
        raise PermanentProviderError(message, **kwargs)

    def reconcile(self, issue: PreparedIssue, batch: OutgoingBatch) -> BatchResult | None:
        """Find the batch's messages through the outbound search's metadata filter."""
        query = {
            "count": str(SEARCH_PAGE_SIZE),
            "offset": "0",
            "metadata_nl_batch": batch.idempotency_key,
            "messagestream": self._stream(issue),
        }
        url = f"{self.settings.postmark_base_url}/messages/outbound?{urlencode(query)}"
        response = self.send(HttpRequest("GET", url, headers=self.headers))
        self.raise_for_error(response)
        found = _found_message_ids(response.json().get("Messages") or [])
        if not found:
            return None
        return BatchResult([_searched(r, found) for r in batch.recipients])


def _item_result(recipient: BatchRecipient, item: Mapping[str, Any]) -> RecipientResult:
    code = int(item.get("ErrorCode", -1))
    if code == SENT:
        return RecipientResult(recipient.email, DeliveryStatus.SENT, str(item.get("MessageID", "")))
    error = f"ErrorCode {code}: {item.get('Message', '')}"
    if code == INACTIVE_RECIPIENT:
        # Postmark refuses addresses that hard-bounced or complained before: never retry.
        return RecipientResult(
            recipient.email, DeliveryStatus.FAILED, error=error,
            suppress=SuppressionReason.BOUNCED_HARD,
        )
    retryable = code in (RATE_LIMITED, MAINTENANCE) or code in ACCOUNT_CODES
    return RecipientResult(recipient.email, DeliveryStatus.FAILED, error=error, retryable=retryable)


def _error_code(response: requests.Response) -> int:
    try:
        return int(response.json().get("ErrorCode", -1))
    except (ValueError, AttributeError, TypeError):
        return -1


def _found_message_ids(messages: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for message in messages:
        for address in message.get("Recipients") or []:
            found[str(address).lower()] = str(message.get("MessageID", ""))
    return found


def _searched(recipient: BatchRecipient, found: Mapping[str, str]) -> RecipientResult:
    message_id = found.get(recipient.email.lower())
    if message_id is None:
        return RecipientResult(recipient.email, DeliveryStatus.UNKNOWN, error="not found in search")
    return RecipientResult(recipient.email, DeliveryStatus.SENT, message_id)
