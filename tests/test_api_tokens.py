"""API tokens: ``newsletter tokens`` through click's runner, and the API's door, on SQLite
and PostgreSQL. Every route of the route table is tried without a token and with a
malformed, forged and revoked one (a new route is tried without touching this file)."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from newsletter.cli import cli
from newsletter.editor import suppressions as suppressing
from newsletter.store import Store
from newsletter.store import issues as issue_store
from newsletter.store.tables import api_tokens
from newsletter.web.api import operations, tokens
from newsletter.web.api.routing import Operation
from tests.api_support import ADMIN_TOKEN, EDITOR_TOKEN, Api, problem, serve_api
from tests.desk_support import Desk

Run = Callable[..., Result]
TOKEN = r"nl_[A-Za-z0-9_-]{43}"


@pytest.fixture
def api(desk: Desk) -> Iterator[Api]:
    yield from serve_api(desk)


@pytest.fixture
def run(home: Path, database_url: str) -> Run:
    (home / ".env").write_text(f"NEWSLETTER_DATABASE_URL={database_url}\n")

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--home", str(home), "tokens", *args])

    return invoke


@pytest.fixture
def store(database_url: str, run: Run) -> Any:
    opened = Store.open(database_url)
    yield opened
    opened.close()


def stored_rows(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(api_tokens))]


# -- the commands ----------------------------------------------------------------------------
def test_create_prints_the_token_once_and_stores_only_its_hash(run: Run, store: Store) -> None:
    made = run("create", "deploy-bot", "--role", "admin")

    assert made.exit_code == 0, made.output
    token = made.stdout.strip()
    assert re.fullmatch(TOKEN, token)
    assert "only its hash is stored" in made.stderr
    (row,) = stored_rows(store)
    assert row["name"] == "deploy-bot" and row["role"] == "admin"
    assert row["token_hash"] == tokens.digest(token)
    assert token not in json.dumps(row, default=str)
    assert tokens.authenticate(store, token) is not None
    listed = run("list")
    assert token not in listed.output and "deploy-bot" in listed.output


def test_list_as_json_names_roles_and_use_never_the_token(run: Run, store: Store) -> None:
    editor = run("create", "cms").stdout.strip()
    run("create", "ops", "--role", "admin")
    assert tokens.authenticate(store, editor) is not None  # used once
    run("revoke", "ops")

    shown = run("list", "--json")

    assert shown.exit_code == 0, shown.output
    rows = {r["name"]: r for r in json.loads(shown.stdout)}
    assert set(rows) == {"cms", "ops"}
    assert rows["cms"]["role"] == "editor" and rows["cms"]["last_used_at"] is not None
    assert rows["cms"]["revoked_at"] is None
    assert rows["ops"]["role"] == "admin" and rows["ops"]["last_used_at"] is None
    assert rows["ops"]["revoked_at"] is not None
    assert set(rows["cms"]) == {"name", "role", "created_at", "last_used_at", "revoked_at"}
    assert editor not in shown.output


def test_revoke_ends_a_token_and_keeps_its_name_taken(run: Run, store: Store) -> None:
    token = run("create", "cms").stdout.strip()

    revoked = run("revoke", "cms")
    again = run("create", "cms")
    unknown = run("revoke", "nobody")

    assert revoked.exit_code == 0 and "Revoked cms" in revoked.output
    assert tokens.authenticate(store, token) is None
    assert again.exit_code == 1 and "already a token named cms" in again.output
    assert unknown.exit_code == 1 and "no token named nobody" in unknown.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "Bad Name"), "NAME 'Bad Name'"),
        (("create", "cms", "--role", "owner"), "'owner' is not one of"),
        (("create",), "Missing argument 'NAME'"),
    ],
)
def test_create_refuses_bad_names_and_roles(
    run: Run, store: Store, args: tuple[str, ...], message: str
) -> None:
    result = run(*args)

    assert result.exit_code != 0
    assert message in result.output
    assert stored_rows(store) == []


def test_an_empty_list_says_how_to_make_one(run: Run, store: Store) -> None:
    assert "newsletter tokens create NAME" in run("list").output


# -- the door --------------------------------------------------------------------------------
def route_path(op: Operation, desk: Desk) -> str:
    with desk.store.engine.connect() as conn:
        (article_id, *_) = issue_store.article_ids(conn, desk.issue_id)
    ids = {"issue_id": desk.issue_id, "article_id": article_id, "list_id": "weekly",
           "email": SUPPRESSED}
    return op.path.format(**ids)


#: The address the admin's routes are tried on, and a body each route that takes one needs.
SUPPRESSED = "someone@example.org"
SAMPLE_BODIES = {"suppress": {"email": SUPPRESSED}}


def table(desk: Desk) -> list[Operation]:
    return operations(desk.publisher)


def bad_credentials(api: Api) -> dict[str, dict[str, str]]:
    forged = tokens.PREFIX + secrets.token_urlsafe(tokens.TOKEN_BYTES)
    revoked = tokens.create(api.desk.store, "gone", "admin")
    tokens.revoke(api.desk.store, "gone")
    return {
        "none": {},
        "not bearer": {"Authorization": f"Basic {api.editor_token}"},
        "empty": {"Authorization": "Bearer "},
        "malformed": {"Authorization": "Bearer x"},
        "too long": {"Authorization": "Bearer " + api.editor_token + "a" * 5000},
        "forged": {"Authorization": f"Bearer {forged}"},
        "revoked": {"Authorization": f"Bearer {revoked}"},
    }


def test_every_route_refuses_a_missing_forged_or_revoked_token(api: Api) -> None:
    client = api.client(None)
    routes = [op for op in table(api.desk) if op.role != "public"]
    assert len(routes) >= 17

    for kind, headers in bad_credentials(api).items():
        for op in routes:
            response = client.request(op.method, route_path(op, api.desk), headers=headers,
                                      json={})
            found = problem(response, 401)
            assert response.headers["WWW-Authenticate"].startswith("Bearer"), (kind, op.name)
            assert "token" in found["detail"]
    assert api.desk.state() == "draft"  # nothing was done


def test_a_bad_token_is_told_apart_from_none(api: Api) -> None:
    client = api.client(None)
    missing = client.get("/issues")
    forged = client.get("/issues", headers={"Authorization": "Bearer nl_" + "A" * 43})

    assert 'error="invalid_token"' not in missing.headers["WWW-Authenticate"]
    assert forged.headers["WWW-Authenticate"] == 'Bearer realm="newsletter", error="invalid_token"'
    assert "revoked" in problem(forged, 401)["detail"]


def test_the_scheme_is_case_insensitive(api: Api) -> None:
    response = api.client(None).get(
        "/issues", headers={"Authorization": f"bearer {api.editor_token}"}
    )

    assert response.status_code == 200


def test_an_editors_token_on_an_admin_route_is_a_403(api: Api) -> None:
    admin_routes = [op for op in table(api.desk) if op.role == "admin"]
    assert admin_routes

    for op in admin_routes:
        suppressing.suppress(api.desk.store, SUPPRESSED, source="test")  # for the lift
        body = SAMPLE_BODIES.get(op.name)
        refused = api.client("editor").request(op.method, route_path(op, api.desk), json=body)
        allowed = api.client("admin").request(op.method, route_path(op, api.desk), json=body)
        assert EDITOR_TOKEN in problem(refused, 403)["detail"]
        assert allowed.status_code in {op.status, *op.also}, (op.name, allowed.text)


def test_a_revoked_token_is_refused_from_the_next_request(api: Api) -> None:
    client = api.client("admin")
    assert client.get("/status").status_code == 200

    tokens.revoke(api.desk.store, ADMIN_TOKEN)

    problem(client.get("/status"), 401)


def test_use_is_recorded_at_most_once_a_minute(api: Api) -> None:
    client = api.client("editor")

    def last_used() -> Any:
        return {t.name: t.last_used_at for t in tokens.listing(api.desk.store)}[EDITOR_TOKEN]

    assert last_used() is None
    client.get("/issues")
    first = last_used()
    api.desk.clock.advance(seconds=30)
    client.get("/issues")
    unchanged = last_used()
    api.desk.clock.advance(seconds=31)
    client.get("/issues")

    assert first == unchanged is not None
    assert last_used() == api.desk.clock.now


def test_the_document_needs_no_token(api: Api) -> None:
    response = api.client(None).get("/openapi.json")

    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.1")
