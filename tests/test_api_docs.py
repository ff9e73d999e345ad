"""The API's documentation names what the API serves: docs/api.md's table has a row for
every operation, and every method and path the README or docs/api.md give exists.

A route added without a row, or a row left for a route that went, sends a script's author
to the wrong place; the README's table of desk steps said "—" for months after the API had
grown the routes it lacked."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.config import Settings
from newsletter.publisher import Publisher
from newsletter.store import Store
from newsletter.web.api import operations, with_document
from newsletter.web.api.routing import PREFIX
from tests.conftest import REPO

API_DOC, README = REPO / "docs" / "api.md", REPO / "README.md"
#: ``GET /path`` in inline code, with ``/api/v1`` or without it, and the paths after it
#: with the same method: one of a single step (``POST /x/unqueue``, ``/pause``) in place of
#: its last step, a longer one whole.
NAMED = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s]*)`((?:,\s*`/[^`\s]*`)*)")
SIBLING = re.compile(r"`(/[^`\s]*)`")


def shape(path: str) -> str:
    """A path with its parameters' names left out (the docs write ``{id}`` for ``{issue_id}``)."""
    return re.sub(r"\{[^}]*\}", "{}", path.removeprefix(PREFIX))


def named_routes(text: str) -> Iterator[tuple[str, str]]:
    for method, path, rest in NAMED.findall(text):
        yield method, shape(path)
        for sibling in SIBLING.findall(rest):
            full = sibling if sibling.count("/") > 1 else path.rsplit("/", 1)[0] + sibling
            yield method, shape(full)


def table_rows(text: str) -> str:
    """The first column of each row of ``## What it does``'s table."""
    section = text.split("## What it does", 1)[1].split("\n## ", 1)[0]
    return "\n".join(line.split(" | ")[0] for line in section.splitlines()
                     if line.startswith("| `"))


@pytest.fixture
def served(settings: Settings) -> set[tuple[str, str]]:
    store = Store.open(settings.database_url)
    try:
        table = with_document(operations(Publisher(settings, store)))
    finally:
        store.close()
    return {(op.method, shape(op.path)) for op in table}


def test_the_api_docs_table_has_a_row_for_every_operation(served: set[tuple[str, str]]) -> None:
    rows = set(named_routes(table_rows(API_DOC.read_text(encoding="utf-8"))))

    missing = served - rows - {("GET", "/openapi.json")}  # told in the text above the table
    assert not missing, f"docs/api.md has no row for {sorted(missing)}"


@pytest.mark.parametrize("document", [README, API_DOC], ids=lambda p: p.name)
def test_every_route_the_docs_name_is_served(
    served: set[tuple[str, str]], document: Path
) -> None:
    named = set(named_routes(document.read_text(encoding="utf-8")))

    assert named, f"{document.name} names no route"
    assert not named - served, f"{document.name} names routes the API lacks: {named - served}"


def test_siblings_take_the_path_before_them() -> None:
    text = "`POST /api/v1/issues/{id}/unqueue`, `/pause` and `GET /lists`, `/lists/{x}`"

    assert list(named_routes(text)) == [
        ("POST", "/issues/{}/unqueue"), ("POST", "/issues/{}/pause"),
        ("GET", "/lists"), ("GET", "/lists/{}"),
    ]
