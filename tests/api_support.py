"""What the API tests share: the desk's publication served by uvicorn, tokens made the way
``newsletter tokens create`` makes them, and a client that checks every answer it gets
against the API's own OpenAPI document.

An answer to a documented operation is checked by openapi-core (its status declared, its
content type and body as the document says); any other (no such route, a method the route
does not take) must be a problem matching the document's ``Problem`` schema.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests
from jsonschema import Draft202012Validator
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound

from newsletter.web.api import tokens
from newsletter.web.api.problems import MEDIA_TYPE
from tests.desk_support import Desk
from tests.servers.webapp import WebApp

EDITOR_TOKEN, ADMIN_TOKEN = "bot", "ops"


def csv_text(raw: bytes, **parameters: str) -> str:
    """A CSV answer's text, in the charset its media type names (UTF-8 by default)."""
    return raw.decode(parameters.get("charset", "utf-8"))


class DocumentCheck:
    """Checks answers against the OpenAPI document the API serves."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        config = Config(extra_media_type_deserializers={
            MEDIA_TYPE: json.loads, "text/csv": csv_text,
        })
        self.openapi = OpenAPI.from_dict(spec, config=config)
        # The document's own components, so that its $refs resolve as written.
        self.problem = Draft202012Validator(
            {"$ref": "#/components/schemas/Problem", "components": spec["components"]}
        )

    def __call__(self, response: requests.Response) -> None:
        request = RequestsOpenAPIRequest(response.request)
        try:
            self.openapi.validate_response(request, RequestsOpenAPIResponse(response))
        except (PathNotFound, OperationNotFound):
            self.check_problem(response)

    def check_problem(self, response: requests.Response) -> None:
        assert response.headers["Content-Type"] == MEDIA_TYPE, response.text[:300]
        body = response.json()
        self.problem.validate(body)
        assert body["status"] == response.status_code


class Client:
    """A script calling the API with one token; every answer is checked (``DocumentCheck``)."""

    def __init__(self, web: WebApp, check: DocumentCheck, token: str | None) -> None:
        self.web = web
        self.check = check
        self.token = token
        self.session = requests.Session()
        self.session.trust_env = False

    def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, **kw: Any
    ) -> requests.Response:
        sent = dict(headers or {})
        if self.token is not None:
            sent.setdefault("Authorization", f"Bearer {self.token}")
        response = self.session.request(method, self.web.url("/api/v1" + path), headers=sent,
                                        **kw)
        self.check(response)
        return response

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> requests.Response:
        return self.request("POST", path, json=body, **kw)

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        response = self.request(method, path, json=body)
        assert response.status_code == status, (method, path, response.text)
        return response.json()


@dataclass
class Api:
    desk: Desk
    web: WebApp
    check: DocumentCheck
    editor_token: str
    admin_token: str

    def client(self, token: str | None = "editor") -> Client:
        chosen = {"editor": self.editor_token, "admin": self.admin_token}.get(token or "", token)
        return Client(self.web, self.check, chosen)


def problem(response: requests.Response, status: int) -> dict[str, Any]:
    """The problem an answer carries, once its status and media type are checked."""
    assert response.status_code == status, response.text[:500]
    assert response.headers["Content-Type"] == MEDIA_TYPE
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["type"] == "about:blank"
    return body


def fields(response: requests.Response) -> dict[str, str]:
    """The refused fields of a problem, by name."""
    return {e["field"]: e["message"] for e in response.json().get("errors", [])}


def serve_api(desk: Desk) -> Iterator[Api]:
    """The desk's publication (two drafts) with an editor's and an admin's token, served;
    a test module's ``api`` fixture yields from it."""
    editor = tokens.create(desk.store, EDITOR_TOKEN, "editor")
    admin = tokens.create(desk.store, ADMIN_TOKEN, "admin")
    with WebApp(desk.app()) as web:
        spec = web.session.get(web.url("/api/v1/openapi.json")).json()
        yield Api(desk, web, DocumentCheck(spec), editor, admin)
