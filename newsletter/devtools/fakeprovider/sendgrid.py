"""SendGrid's v3 Mail Send, with legacy substitutions, as documented."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from .common import bearer, json_body, new_id, string_values
from .core import Copy, FakeApi, FakeRequest, FakeResponse, Fault, Rendered, Submission

MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000


class SendGridApi(FakeApi):
    name = "sendgrid"

    def send_path(self, path: str) -> bool:
        return path == "/v3/mail/send"

    def authenticate(self, request: FakeRequest) -> FakeResponse | None:
        if bearer(request) != self.credentials.sendgrid_api_key:
            return self.unauthorized()
        return None

    def unauthorized(self) -> FakeResponse:
        return _errors(401, None, "The provided authorization grant is invalid, expired, or "
                                  "revoked")

    def rate_limited(self, retry_after: float) -> FakeResponse:
        reset = str(int(time.time() + retry_after))
        headers = {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0",
                   "X-RateLimit-Reset": reset}
        return FakeResponse.json(429, {"errors": [{"field": None, "message": "too many requests",
                                                   "help": None}]}, headers)

    def server_error(self) -> FakeResponse:
        return _errors(500, None, "internal server error")

    def parse(self, request: FakeRequest) -> Submission | FakeResponse:
        try:
            mail = json_body(request)
        except ValueError:
            return _errors(400, None, "Bad Request")
        if not isinstance(mail, dict):
            return _errors(400, None, "Bad Request")
        problem = _invalid(mail)
        if problem:
            return _errors(400, *problem)
        recipients = [str(to.get("email", "")) for p in mail["personalizations"]
                      for to in p.get("to") or []]
        return Submission(recipients, state=mail)

    def accept(
        self, submission: Submission, failing: Mapping[str, Fault]
    ) -> tuple[list[Copy], FakeResponse]:
        mail: dict[str, Any] = submission.state
        message_id = new_id().replace("-", "")[:22]
        copies = [
            Copy(self.name, str(to.get("email")), "", _metadata(mail, p), message_id,
                 _renderer(mail, p))
            for p in mail["personalizations"] for to in p.get("to") or []
        ]
        return copies, FakeResponse(202, b"", {"X-Message-Id": message_id})


def _errors(status: int, field: str | None, message: str) -> FakeResponse:
    return FakeResponse.json(status, {"errors": [{"field": field, "message": message,
                                                  "help": None}]})


def _invalid(mail: Mapping[str, Any]) -> tuple[str, str] | None:
    personalizations = mail.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        return "personalizations", "The personalizations field is required and must have at " \
                                   "least one personalization."
    recipients = sum(len(p.get("to") or []) + len(p.get("cc") or []) + len(p.get("bcc") or [])
                     for p in personalizations)
    if len(personalizations) > MAX_PERSONALIZATIONS or recipients > MAX_RECIPIENTS:
        return "personalizations", "You may not have more than 1000 personalizations or 1000 " \
                                   "recipients per request."
    if not (mail.get("from") or {}).get("email"):
        return "from.email", "The from object must be provided for every email send."
    if not mail.get("subject") and not all(p.get("subject") for p in personalizations):
        return "subject", "The subject is required. You can get around this requirement if " \
                          "every personalization has a subject defined."
    if not mail.get("content"):
        return "content", "Unless a valid template_id is provided, the content parameter is " \
                          "required."
    return None


def _metadata(mail: Mapping[str, Any], personalization: Mapping[str, Any]) -> dict[str, str]:
    args = {**(mail.get("custom_args") or {}), **(personalization.get("custom_args") or {})}
    return string_values(args)


def _renderer(mail: Mapping[str, Any], personalization: Mapping[str, Any]) -> Any:
    return lambda: _render(mail, personalization)


def _render(mail: Mapping[str, Any], personalization: Mapping[str, Any]) -> Rendered:
    substitutions: Mapping[str, str] = personalization.get("substitutions") or {}

    def fill(text: str) -> str:
        for tag, value in substitutions.items():
            text = text.replace(tag, value)
        return text

    content = {c.get("type"): str(c.get("value", "")) for c in mail.get("content") or []}
    headers = {**(mail.get("headers") or {}), **(personalization.get("headers") or {})}
    return Rendered(
        subject=fill(str(personalization.get("subject") or mail.get("subject", ""))),
        html=fill(content.get("text/html", "")), text=fill(content.get("text/plain", "")),
        list_unsubscribe=str(headers.get("List-Unsubscribe", "")), headers=headers,
    )
