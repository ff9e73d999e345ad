"""Postmark's ``/email/batch`` and outbound message search, as documented."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .common import addresses, json_body, new_id, string_values
from .core import Copy, FakeApi, FakeRequest, FakeResponse, Fault, Rendered, Submission

MAX_MESSAGES = 500
STREAMS = frozenset({"outbound", "broadcast"})
#: A server's transactional stream, which a message naming none goes through.
DEFAULT_STREAM = "outbound"
INACTIVE = (
    "You tried to send to recipient(s) that have been marked as inactive. Found inactive "
    "addresses: {}. Inactive recipients are ones that have generated a hard bounce, a spam "
    "complaint, or a manual suppression."
)


class PostmarkApi(FakeApi):
    name = "postmark"
    queries = (("GET", "/messages/outbound", "search"),)

    def send_path(self, path: str) -> bool:
        return path == "/email/batch"

    def authenticate(self, request: FakeRequest) -> FakeResponse | None:
        if request.header("x-postmark-server-token") != self.credentials.postmark_server_token:
            return self.unauthorized()
        return None

    def unauthorized(self) -> FakeResponse:
        return _error(401, 10, "Request does not contain a valid Server token.")

    def rate_limited(self, retry_after: float) -> FakeResponse:
        return _error(429, 429, "Rate limit exceeded.")

    def server_error(self) -> FakeResponse:
        return _error(500, 500, "Internal server error.")

    def parse(self, request: FakeRequest) -> Submission | FakeResponse:
        try:
            messages = json_body(request)
        except ValueError:
            return _error(422, 402, "Received invalid JSON input.")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            return _error(422, 403, "Incompatible JSON input: a batch is an array of messages.")
        if len(messages) > MAX_MESSAGES:
            return _error(422, 410, f"Too many batch messages: at most {MAX_MESSAGES}.")
        recipients = [r for m in messages for r in addresses(str(m.get("To", "")))]
        return Submission(recipients, state=messages)

    def accept(
        self, submission: Submission, failing: Mapping[str, Fault]
    ) -> tuple[list[Copy], FakeResponse]:
        copies: list[Copy] = []
        results = [self._item(m, failing, copies) for m in submission.state]
        return copies, FakeResponse.json(200, results)

    def _item(self, message: Mapping[str, Any], failing: Mapping[str, Fault],
              copies: list[Copy]) -> dict[str, Any]:
        to = addresses(str(message.get("To", "")))
        problem = _invalid(message, to)
        if problem:
            return {"ErrorCode": 300, "Message": problem}
        refused = [a for a in to if a.lower() in failing]
        if refused:
            code = int(failing[refused[0].lower()].code or 406)
            text = INACTIVE.format(", ".join(refused)) if code == 406 else f"Error {code}"
            return {"ErrorCode": code, "Message": text}
        message_id = new_id()
        metadata = string_values(message.get("Metadata") or {})
        content = _rendered(message)
        stream = str(message.get("MessageStream", DEFAULT_STREAM))
        copies += [Copy(self.name, a, "", metadata, message_id, lambda: content, channel=stream)
                   for a in to]
        submitted = datetime.now(UTC).isoformat()
        return {"ErrorCode": 0, "Message": "OK", "MessageID": message_id,
                "SubmittedAt": submitted, "To": message.get("To")}

    def search(self, request: FakeRequest) -> FakeResponse:
        refused = self.authenticate(request)
        if refused is not None:
            return refused
        try:
            count, offset = int(request.param("count")), int(request.param("offset"))
        except ValueError:
            return _error(422, 300, "The 'count' and 'offset' parameters are required.")
        found = [c for c in self.context.recorder.copies(self.name) if _matches(c, request)]
        page = found[offset:offset + min(count, 500)]
        return FakeResponse.json(200, {"TotalCount": len(found),
                                       "Messages": [_summary(c) for c in page]})


def _error(status: int, code: int, message: str) -> FakeResponse:
    return FakeResponse.json(status, {"ErrorCode": code, "Message": message})


def _invalid(message: Mapping[str, Any], to: list[str]) -> str:
    if not message.get("From"):
        return "Invalid 'From' address: ''."
    if not to:
        return "Invalid 'To' address: ''."
    if not (message.get("HtmlBody") or message.get("TextBody")):
        return "Provide either email TextBody or HtmlBody or both."
    stream = message.get("MessageStream", DEFAULT_STREAM)
    if stream not in STREAMS:
        return f"The message stream '{stream}' was not found."
    return ""


def _rendered(message: Mapping[str, Any]) -> Rendered:
    headers = {str(h.get("Name")): str(h.get("Value")) for h in message.get("Headers") or []}
    return Rendered(
        subject=str(message.get("Subject", "")), html=str(message.get("HtmlBody", "")),
        text=str(message.get("TextBody", "")),
        list_unsubscribe=headers.get("List-Unsubscribe", ""), headers=headers,
    )


def _matches(copy: Copy, request: FakeRequest) -> bool:
    for name, values in request.query.items():
        if name.startswith("metadata_") and copy.metadata.get(name[9:]) != values[0]:
            return False
    if copy.channel != (request.param("messagestream") or DEFAULT_STREAM):
        return False  # the outbound search looks in one stream, the transactional by default
    recipient = request.param("recipient")
    return not recipient or recipient.lower() == copy.recipient.lower()


def _summary(copy: Copy) -> dict[str, Any]:
    return {"MessageID": copy.message_id, "Recipients": [copy.recipient],
            "To": [{"Email": copy.recipient, "Name": None}], "Status": "Sent",
            "Subject": copy.content.subject, "Metadata": dict(copy.metadata)}
