"""Amazon SES v2 ``SendBulkEmail``: up to 50 entries per call, merged by SES.

The issue becomes an inline template (``TemplateContent``) whose ``{{{x}}}`` variables
are the merge markers; each entry's ``ReplacementTemplateData`` holds its recipient's plain
values and pre-escaped ``h_x`` values for the HTML part. Triple braces keep SES's Handlebars
from escaping a second time (and from escaping the plain-text part at all). Each entry's
``ReplacementHeaders`` carry its own List-Unsubscribe. Requests are signed with botocore's
SigV4 signer; per-entry statuses decide each recipient's fate.
"""

from __future__ import annotations

import email.utils
from email.header import Header
from typing import Any

import orjson
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

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
)
from ..variables import batch_variables
from .resend import tag_value

SIGNING_NAME = "ses"
BULK_PATH = "/v2/email/outbound-bulk-emails"
#: Entry statuses worth another attempt later; every other failure is final.
RETRYABLE_STATUSES = frozenset(
    {
        "TRANSIENT_FAILURE",
        "ACCOUNT_THROTTLED",
        "ACCOUNT_DAILY_QUOTA_EXCEEDED",
    }
)
#: Statuses that stop the whole account or configuration, not one address.
ACCOUNT_STATUSES = frozenset(
    {
        "ACCOUNT_SUSPENDED",
        "ACCOUNT_SENDING_PAUSED",
        "CONFIGURATION_SET_SENDING_PAUSED",
        "MAIL_FROM_DOMAIN_NOT_VERIFIED",
        "CONFIGURATION_SET_NOT_FOUND",
    }
)
ACCOUNT_ERRORS = frozenset(
    {
        "AccountSuspendedException",
        "SendingPausedException",
        "MailFromDomainNotVerifiedException",
        "NotFoundException",
    }
)


def _plain(field: str) -> str:
    return f"{{{{{{{field}}}}}}}"


def _escaped(field: str) -> str:
    return f"{{{{{{h_{field}}}}}}}"


class SesProvider(HttpProvider):
    name = "ses"
    max_batch = 50

    def build_request(self, issue: PreparedIssue, batch: OutgoingBatch) -> HttpRequest:
        body = orjson.dumps(self.payload(issue, batch))
        url = f"{self.settings.resolved_ses_base_url}{BULK_PATH}"
        return HttpRequest("POST", url, headers=self.signed_headers(url, body), data=body)

    def payload(self, issue: PreparedIssue, batch: OutgoingBatch) -> dict[str, Any]:
        variables = batch_variables(issue, batch)
        template = {
            "TemplateContent": {
                "Subject": issue.subject.with_markers(_plain),
                "Text": issue.text.with_markers(_plain),
                "Html": variables.html(issue, _plain, _escaped),
            },
            "TemplateData": "{}",
            "Headers": _header_list(issue.shared_headers()),
        }
        payload: dict[str, Any] = {
            "FromEmailAddress": _address(issue.from_email, issue.from_name),
            "DefaultContent": {"Template": template},
            "BulkEmailEntries": [
                _entry(issue, r, values)
                for r, values in zip(batch.recipients, variables.per_recipient, strict=True)
            ],
            "DefaultEmailTags": [
                {"Name": "nl_batch", "Value": tag_value(batch.idempotency_key)},
                {"Name": "nl_issue", "Value": str(issue.issue_id)},
            ],
        }
        if issue.reply_to:
            payload["ReplyToAddresses"] = [issue.reply_to]
        if self.settings.ses_configuration_set:
            payload["ConfigurationSetName"] = self.settings.ses_configuration_set
        return payload

    def signed_headers(self, url: str, body: bytes) -> dict[str, str]:
        credentials = Credentials(
            self.settings.ses_access_key_id, self.settings.ses_secret_access_key.reveal()
        )
        request = AWSRequest("POST", url, data=body, headers={"Content-Type": "application/json"})
        SigV4Auth(credentials, SIGNING_NAME, self.settings.ses_region).add_auth(request)
        return dict(request.headers.items())

    def parse_response(self, batch: OutgoingBatch, response: requests.Response) -> BatchResult:
        entries = response.json()["BulkEmailEntryResults"]
        if len(entries) != len(batch.recipients):
            raise ValueError(f"expected {len(batch.recipients)} entry results, got {len(entries)}")
        statuses = {str(e.get("Status")) for e in entries}
        if "SUCCESS" not in statuses and statuses & ACCOUNT_STATUSES:
            raise ProviderAuthError(
                str(entries[0].get("Error") or entries[0].get("Status")),
                provider=self.name,
                status=response.status_code,
                body=response.text,
            )
        return BatchResult(
            [_entry_result(r, e) for r, e in zip(batch.recipients, entries, strict=True)]
        )

    def raise_for_error(self, response: requests.Response) -> None:
        if response.status_code < 300:
            return
        kind = _error_type(response)
        kwargs: dict[str, Any] = {
            "provider": self.name,
            "status": response.status_code,
            "body": response.text,
        }
        message = f"{kind}: {error_message(response)}" if kind else error_message(response)
        if kind in ACCOUNT_ERRORS:
            raise ProviderAuthError(message, **kwargs)
        if kind == "TooManyRequestsException":
            raise TransientProviderError(message, **kwargs)
        if kind == "LimitExceededException":
            raise PermanentProviderError(message, **kwargs)
        super().raise_for_error(response)


def _entry(
    issue: PreparedIssue, recipient: BatchRecipient, values: dict[str, str]
) -> dict[str, Any]:
    data = orjson.dumps(values).decode()
    unsubscribe = issue.list_unsubscribe.render(recipient.values)
    return {
        "Destination": {"ToAddresses": [_address(recipient.email, recipient.name)]},
        "ReplacementEmailContent": {"ReplacementTemplate": {"ReplacementTemplateData": data}},
        "ReplacementHeaders": [{"Name": "List-Unsubscribe", "Value": _ascii(unsubscribe)}],
        "ReplacementTags": [{"Name": "nl_rid", "Value": str(recipient.recipient_id)}],
    }


def _header_list(headers: dict[str, str]) -> list[dict[str, str]]:
    # SES takes printable ASCII only: anything else goes as an RFC 2047 encoded-word.
    return [{"Name": k, "Value": _ascii(v)} for k, v in headers.items()]


def _ascii(value: str) -> str:
    return value if value.isascii() else Header(value, "utf-8").encode()


def _address(address: str, name: str) -> str:
    return email.utils.formataddr((name, address), charset="utf-8")


def _entry_result(recipient: BatchRecipient, entry: dict[str, Any]) -> RecipientResult:
    status = str(entry.get("Status", ""))
    if status == "SUCCESS":
        message_id = str(entry.get("MessageId", ""))
        return RecipientResult(recipient.email, DeliveryStatus.SENT, message_id)
    return RecipientResult(
        recipient.email,
        DeliveryStatus.FAILED,
        error=f"{status}: {entry.get('Error', '')}",
        retryable=status in RETRYABLE_STATUSES,
    )


def _error_type(response: requests.Response) -> str:
    """The short error name from ``x-amzn-ErrorType`` (``Name:namespace``) or the body."""
    raw = response.headers.get("x-amzn-ErrorType", "")
    if not raw:
        try:
            body = response.json()
        except ValueError:
            return ""
        raw = str(body.get("__type", "")) if isinstance(body, dict) else ""
    return raw.split(":", 1)[0].rsplit("#", 1)[-1]
