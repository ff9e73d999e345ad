"""Brevo's ``/v3/smtp/email`` with ``messageVersions`` and a body idempotency key."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from .common import json_body, new_id, string_values
from .core import Copy, FakeApi, FakeRequest, FakeResponse, Fault, Rendered, Submission

MAX_VERSIONS = 1000
MAX_PER_VERSION = 99
PARAM = re.compile(r"\{\{\s*params\.([\w]+)\s*\}\}")


class BrevoApi(FakeApi):
    name = "brevo"
    replay_on_conflict = True

    def send_path(self, path: str) -> bool:
        return path == "/v3/smtp/email"

    def authenticate(self, request: FakeRequest) -> FakeResponse | None:
        if request.header("api-key") != self.credentials.brevo_api_key:
            return self.unauthorized()
        return None

    def unauthorized(self) -> FakeResponse:
        return _error(401, "unauthorized", "Key not found")

    def rate_limited(self, retry_after: float) -> FakeResponse:
        headers = {"x-sib-ratelimit-limit": "1000", "x-sib-ratelimit-remaining": "0",
                   "x-sib-ratelimit-reset": f"{retry_after:g}"}
        return FakeResponse.json(429, {"code": "too_many_requests",
                                       "message": "The expected rate limit is exceeded."}, headers)

    def server_error(self) -> FakeResponse:
        return _error(500, "internal_error", "Internal server error")

    def parse(self, request: FakeRequest) -> Submission | FakeResponse:
        try:
            mail = json_body(request)
        except ValueError:
            return _error(400, "bad_request", "Input must be a valid JSON object")
        if not isinstance(mail, dict):
            return _error(400, "bad_request", "Input must be a valid JSON object")
        problem = _invalid(mail)
        if problem:
            return _error(400, *problem)
        key = str((mail.get("headers") or {}).get("idempotencyKey", ""))
        recipients = [str(c.get("email")) for v in _versions(mail) for c in v.get("to") or []]
        return Submission(recipients, idempotency_key=key, state=mail)

    def accept(
        self, submission: Submission, failing: Mapping[str, Fault]
    ) -> tuple[list[Copy], FakeResponse]:
        mail: dict[str, Any] = submission.state
        copies: list[Copy] = []
        ids = [self._version(mail, v, submission.idempotency_key, copies)
               for v in _versions(mail)]
        if "messageVersions" in mail:
            return copies, FakeResponse.json(201, {"messageIds": ids})
        return copies, FakeResponse.json(201, {"messageId": ids[0]})

    def _version(self, mail: Mapping[str, Any], version: Mapping[str, Any], key: str,
                 copies: list[Copy]) -> str:
        message_id = f"<{new_id()}@smtp-relay.mailin.fr>"
        headers = {**(mail.get("headers") or {}), **(version.get("headers") or {})}
        metadata = string_values(json.loads(headers.get("X-Mailin-custom") or "{}"))
        copies += [Copy(self.name, str(c.get("email")), key, metadata, message_id,
                        _renderer(mail, version)) for c in version.get("to") or []]
        return message_id


def _error(status: int, code: str, message: str) -> FakeResponse:
    return FakeResponse.json(status, {"code": code, "message": message})


def _versions(mail: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(mail.get("messageVersions") or [{"to": mail.get("to") or []}])


def _invalid(mail: Mapping[str, Any]) -> tuple[str, str] | None:
    if not (mail.get("sender") or {}).get("email"):
        return "missing_parameter", "sender is missing"
    versions = mail.get("messageVersions")
    if versions is not None and mail.get("to"):
        return "invalid_parameter", "to cannot be used together with messageVersions"
    if versions is not None and not 1 <= len(versions) <= MAX_VERSIONS:
        return "invalid_parameter", f"messageVersions holds 1 to {MAX_VERSIONS} versions"
    if any(len(v.get("to") or []) > MAX_PER_VERSION for v in versions or []):
        return "invalid_parameter", f"a message version takes at most {MAX_PER_VERSION} to"
    if not any(v.get("to") for v in _versions(mail)):
        return "missing_parameter", "to is missing"
    if not mail.get("subject") and not all(v.get("subject") for v in versions or [{}]):
        return "missing_parameter", "subject is missing"
    if not mail.get("htmlContent") and not mail.get("templateId"):
        return "missing_parameter", "htmlContent is missing"
    return _invalid_key(str((mail.get("headers") or {}).get("idempotencyKey", "")))


def _invalid_key(key: str) -> tuple[str, str] | None:
    if not key:
        return None
    try:
        uuid.UUID(key)
    except ValueError:
        return "invalid_parameter", "idempotencyKey must be a UUID"
    return None


def _renderer(mail: Mapping[str, Any], version: Mapping[str, Any]) -> Any:
    return lambda: _render(mail, version)


def _render(mail: Mapping[str, Any], version: Mapping[str, Any]) -> Rendered:
    params = {**(mail.get("params") or {}), **(version.get("params") or {})}

    def fill(text: str) -> str:
        return PARAM.sub(lambda m: str(params.get(m.group(1), "")), text)

    headers = {**(mail.get("headers") or {}), **(version.get("headers") or {})}
    headers.pop("idempotencyKey", None)
    return Rendered(
        subject=fill(str(version.get("subject") or mail.get("subject", ""))),
        html=fill(str(version.get("htmlContent") or mail.get("htmlContent", ""))),
        text=fill(str(version.get("textContent") or mail.get("textContent", ""))),
        list_unsubscribe=str(headers.get("List-Unsubscribe", "")), headers=headers,
    )
