"""Resend's ``/emails/batch`` with ``Idempotency-Key``, and its typed errors."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .common import addresses, bearer, json_body, new_id
from .core import (
    Copy,
    FakeApi,
    FakeRequest,
    FakeResponse,
    Fault,
    Idempotency,
    Rendered,
    Submission,
)

MAX_EMAILS = 100
MAX_TO = 50
MAX_KEY_LENGTH = 256
TAG_TEXT = re.compile(r"[A-Za-z0-9_-]{1,256}")


class ResendApi(FakeApi):
    name = "resend"

    def send_path(self, path: str) -> bool:
        return path == "/emails/batch"

    def authenticate(self, request: FakeRequest) -> FakeResponse | None:
        token = bearer(request)
        if token is None:
            return _error(401, "missing_api_key", "Missing API key in the authorization header.")
        if token != self.credentials.resend_api_key:
            return self.unauthorized()
        return None

    def unauthorized(self) -> FakeResponse:
        return _error(403, "invalid_api_key", "API key is invalid")

    def rate_limited(self, retry_after: float) -> FakeResponse:
        headers = {"retry-after": f"{retry_after:g}", "ratelimit-limit": "2",
                   "ratelimit-remaining": "0", "ratelimit-reset": f"{retry_after:g}"}
        return FakeResponse.json(429, _body(429, "rate_limit_exceeded", "Too many requests. "
                                            "You can only make 2 requests per second."), headers)

    def server_error(self) -> FakeResponse:
        return _error(500, "application_error", "An unexpected error occurred.")

    def idempotency_conflict(self, state: Idempotency) -> FakeResponse:
        if state is Idempotency.IN_FLIGHT:
            return _error(409, "concurrent_idempotent_requests", "Same idempotency key used "
                          "while original request is still in progress.")
        return _error(409, "invalid_idempotent_request", "Same idempotency key used with a "
                      "different request payload.")

    def parse(self, request: FakeRequest) -> Submission | FakeResponse:
        key = request.header("idempotency-key")
        if len(key) > MAX_KEY_LENGTH:
            return _error(400, "invalid_idempotency_key", "The key must be at most 256 characters.")
        try:
            emails = json_body(request)
        except ValueError:
            return _error(400, "validation_error", "Invalid JSON body.")
        if not isinstance(emails, list) or not 1 <= len(emails) <= MAX_EMAILS:
            return _error(422, "validation_error", f"A batch holds 1 to {MAX_EMAILS} emails.")
        for email in emails:
            problem = _invalid(email)
            if problem:
                return problem
        recipients = [a for e in emails for a in addresses(e.get("to") or [])]
        return Submission(recipients, idempotency_key=key, state=emails)

    def accept(
        self, submission: Submission, failing: Mapping[str, Fault]
    ) -> tuple[list[Copy], FakeResponse]:
        copies: list[Copy] = []
        data = [{"id": self._record(e, submission.idempotency_key, copies)}
                for e in submission.state]
        return copies, FakeResponse.json(200, {"data": data})

    def _record(self, email: Mapping[str, Any], key: str, copies: list[Copy]) -> str:
        email_id = new_id()
        tags = {str(t["name"]): str(t["value"]) for t in email.get("tags") or []}
        headers = {str(k): str(v) for k, v in (email.get("headers") or {}).items()}
        content = Rendered(
            subject=str(email["subject"]), html=str(email.get("html", "")),
            text=str(email.get("text", "")),
            list_unsubscribe=headers.get("List-Unsubscribe", ""), headers=headers,
        )
        copies += [Copy(self.name, a, key, tags, email_id, lambda: content)
                   for a in addresses(email.get("to") or [])]
        return email_id


def _body(status: int, name: str, message: str) -> dict[str, Any]:
    return {"statusCode": status, "name": name, "message": message}


def _error(status: int, name: str, message: str) -> FakeResponse:
    return FakeResponse.json(status, _body(status, name, message))


def _invalid(email: Any) -> FakeResponse | None:
    if not isinstance(email, dict):
        return _error(422, "validation_error", "Each batch item must be an email object.")
    for field in ("from", "to", "subject"):
        if not email.get(field):
            return _error(422, "missing_required_field", f"Missing `{field}` field.")
    if len(addresses(email["to"])) > MAX_TO:
        return _error(422, "validation_error", f"`to` takes at most {MAX_TO} addresses.")
    for tag in email.get("tags") or []:
        if not (TAG_TEXT.fullmatch(str(tag.get("name", "")))
                and TAG_TEXT.fullmatch(str(tag.get("value", "")))):
            return _error(422, "validation_error", "Tags should only contain ASCII letters, "
                          "numbers, underscores, or dashes.")
    return None
