"""Amazon SES v2 ``SendBulkEmail``, with SigV4 signatures checked by botocore."""

from __future__ import annotations

import datetime
import hmac
import html
import json
import re
from collections.abc import Mapping
from typing import Any

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as AwsCredentials

from .common import addresses, json_body, new_id
from .core import Copy, FakeApi, FakeRequest, FakeResponse, Fault, Rendered, Submission

BULK_PATH = "/v2/email/outbound-bulk-emails"
MAX_ENTRIES = 50
MAX_SKEW = datetime.timedelta(minutes=15)
AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<signed>[^,]+), ?"
    r"Signature=(?P<sig>[0-9a-f]+)"
)
#: Handlebars: ``{{{x}}}`` inserts as is, ``{{x}}`` HTML-escapes.
VARIABLE = re.compile(r"\{\{\{\s*([\w.]+)\s*\}\}\}|\{\{\s*([\w.]+)\s*\}\}")
TAG_TEXT = re.compile(r"[A-Za-z0-9_-]{1,256}")
BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. Check "
    "your AWS Secret Access Key and signing method."
)


class SesApi(FakeApi):
    name = "ses"

    def send_path(self, path: str) -> bool:
        return path == BULK_PATH

    def authenticate(self, request: FakeRequest) -> FakeResponse | None:
        raw = request.header("authorization")
        if not raw:
            return _error(403, "MissingAuthenticationTokenException",
                          "Missing Authentication Token")
        match = AUTHORIZATION.fullmatch(raw.strip())
        if match is None:
            return _error(403, "IncompleteSignatureException", "Authorization header is malformed.")
        if match["key"] != self.credentials.ses_access_key_id:
            return self.unauthorized()
        if (match["region"], match["service"]) != (self.credentials.ses_region, "ses"):
            return _error(403, "InvalidSignatureException", "Credential should be scoped to a "
                          f"valid region and service ({self.credentials.ses_region}, ses).")
        return self._check_signature(request, match)

    def _check_signature(self, request: FakeRequest, match: re.Match[str]) -> FakeResponse | None:
        stamp = request.header("x-amz-date")
        try:
            signed_at = datetime.datetime.strptime(stamp, SIGV4_TIMESTAMP).replace(
                tzinfo=datetime.UTC)
        except ValueError:
            return _error(403, "IncompleteSignatureException", "X-Amz-Date is missing or invalid.")
        if abs(datetime.datetime.now(datetime.UTC) - signed_at) > MAX_SKEW:
            return _error(403, "InvalidSignatureException", "Signature expired.")
        expected = self._signature(request, match["signed"].split(";"), stamp)
        if not hmac.compare_digest(expected, match["sig"]):
            return _error(403, "InvalidSignatureException", BAD_SIGNATURE)
        return None

    def _signature(self, request: FakeRequest, signed: list[str], stamp: str) -> str:
        headers = {name: request.header(name) for name in signed}
        url = f"http://{request.host}{request.path}"
        aws_request = AWSRequest(request.method, url, data=request.body, headers=headers)
        aws_request.context["timestamp"] = stamp
        signer = SigV4Auth(
            AwsCredentials(self.credentials.ses_access_key_id,
                           self.credentials.ses_secret_access_key),
            "ses", self.credentials.ses_region,
        )
        canonical = signer.canonical_request(aws_request)
        return str(signer.signature(signer.string_to_sign(aws_request, canonical), aws_request))

    def unauthorized(self) -> FakeResponse:
        return _error(403, "UnrecognizedClientException",
                      "The security token included in the request is invalid.")

    def rate_limited(self, retry_after: float) -> FakeResponse:
        return _error(429, "TooManyRequestsException", "Too Many Requests")

    def server_error(self) -> FakeResponse:
        return _error(500, "InternalFailure", "The request processing has failed.")

    def parse(self, request: FakeRequest) -> Submission | FakeResponse:
        try:
            payload = json_body(request)
        except ValueError:
            return _error(400, "SerializationException", "Could not parse the request body.")
        problem = _invalid(payload) if isinstance(payload, dict) else "Expected a JSON object."
        if problem:
            return _error(400, "BadRequestException", problem)
        recipients = [a for e in payload["BulkEmailEntries"]
                      for a in addresses(e["Destination"].get("ToAddresses") or [])]
        return Submission(recipients, state=payload)

    def accept(
        self, submission: Submission, failing: Mapping[str, Fault]
    ) -> tuple[list[Copy], FakeResponse]:
        payload: dict[str, Any] = submission.state
        copies: list[Copy] = []
        results = [self._entry(payload, e, failing, copies) for e in payload["BulkEmailEntries"]]
        return copies, FakeResponse.json(200, {"BulkEmailEntryResults": results})

    def _entry(self, payload: Mapping[str, Any], entry: Mapping[str, Any],
               failing: Mapping[str, Fault], copies: list[Copy]) -> dict[str, str]:
        to = addresses(entry["Destination"].get("ToAddresses") or [])
        refused = [a for a in to if a.lower() in failing]
        if refused:
            status = failing[refused[0].lower()].code or "TRANSIENT_FAILURE"
            return {"Status": status, "Error": f"{status} for {refused[0]}"}
        message_id = f"{new_id().replace('-', '')}-000000"
        tags = _tags(payload.get("DefaultEmailTags"), entry.get("ReplacementTags"))
        copies += [Copy(self.name, a, "", tags, message_id, _renderer(payload, entry))
                   for a in to]
        return {"Status": "SUCCESS", "MessageId": message_id}


def _error(status: int, kind: str, message: str) -> FakeResponse:
    return FakeResponse.json(status, {"message": message}, {"x-amzn-ErrorType": f"{kind}:"})


def _invalid(payload: Mapping[str, Any]) -> str:
    entries = payload.get("BulkEmailEntries")
    if not isinstance(entries, list) or not entries:
        return "BulkEmailEntries must hold at least one entry."
    if len(entries) > MAX_ENTRIES:
        return f"BulkEmailEntries holds at most {MAX_ENTRIES} entries."
    if not payload.get("FromEmailAddress"):
        return "FromEmailAddress is required."
    template = (payload.get("DefaultContent") or {}).get("Template") or {}
    content = template.get("TemplateContent") or {}
    if not (template.get("TemplateName") or content.get("Subject")):
        return "DefaultContent.Template needs a TemplateName or a TemplateContent with a Subject."
    if any(not isinstance(e.get("Destination"), dict) for e in entries):
        return "Every BulkEmailEntry needs a Destination."
    tags = list(payload.get("DefaultEmailTags") or [])
    tags += [t for e in entries for t in e.get("ReplacementTags") or []]
    if any(not (TAG_TEXT.fullmatch(str(t.get("Name", "")))
                and TAG_TEXT.fullmatch(str(t.get("Value", "")))) for t in tags):
        return "Tag names and values may only hold ASCII letters, digits, '_' and '-'."
    return ""


def _tags(default: Any, replacement: Any) -> dict[str, str]:
    tags = {str(t["Name"]): str(t["Value"]) for t in default or []}
    tags.update({str(t["Name"]): str(t["Value"]) for t in replacement or []})
    return tags


def _renderer(payload: Mapping[str, Any], entry: Mapping[str, Any]) -> Any:
    return lambda: _render(payload, entry)


def _render(payload: Mapping[str, Any], entry: Mapping[str, Any]) -> Rendered:
    template = payload["DefaultContent"]["Template"]
    content = template.get("TemplateContent") or {}
    replacement = (entry.get("ReplacementEmailContent") or {}).get("ReplacementTemplate") or {}
    data = {**json.loads(template.get("TemplateData") or "{}"),
            **json.loads(replacement.get("ReplacementTemplateData") or "{}")}
    headers = {h["Name"]: h["Value"] for h in template.get("Headers") or []}
    headers.update({h["Name"]: h["Value"] for h in entry.get("ReplacementHeaders") or []})
    return Rendered(
        subject=_handlebars(content.get("Subject", ""), data),
        html=_handlebars(content.get("Html", ""), data),
        text=_handlebars(content.get("Text", ""), data),
        list_unsubscribe=headers.get("List-Unsubscribe", ""), headers=headers,
    )


def _handlebars(text: str, data: Mapping[str, Any]) -> str:
    def replace(match: re.Match[str]) -> str:
        raw, escaped = match.group(1), match.group(2)
        value = str(data.get(raw or escaped, ""))
        return value if raw else html.escape(value)

    return VARIABLE.sub(replace, text)
