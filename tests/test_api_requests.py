"""The API's requests and answers, over real HTTP: its OpenAPI document, one problem shape
for every error (bad JSON, wrong types, unknown fields, huge ids, bodies too large, routes
and methods that do not exist, bad cursors), walking lists a page at a time, and the
collect hook. Every answer is checked against the document (``tests/api_support.py``)."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from openapi_spec_validator import validate
from sqlalchemy import func, insert, select

from newsletter.config import Settings
from newsletter.models import IssueState
from newsletter.store import Store
from newsletter.store import issues as issue_store
from newsletter.store.tables import articles
from newsletter.web.api import api_app, operations
from newsletter.web.api.openapi import REF
from newsletter.web.api.problems import MEDIA_TYPE
from newsletter.web.api.routing import MAX_BODY, Call, Operation
from newsletter.web.api.schemas import Findings, IssueDetail, QueueBody
from newsletter.web.coalesced import Coalesced
from tests.api_support import Api, fields, problem, serve_api
from tests.desk_support import Desk, make_desk
from tests.servers.webapp import WebApp, add_issue


@pytest.fixture
def api(settings: Settings, tmp_path: Path) -> Iterator[Api]:
    """On SQLite: what these tests check does not depend on the database."""
    for desk in make_desk(settings, f"sqlite:///{tmp_path / 'api.db'}"):
        yield from serve_api(desk)


@pytest.fixture
def both(desk: Desk) -> Iterator[Api]:
    """On SQLite and PostgreSQL: for the queries that page through lists."""
    yield from serve_api(desk)


# -- the document ----------------------------------------------------------------------------
def test_the_document_is_valid_openapi_3_1_and_lists_every_operation(api: Api) -> None:
    spec = api.check.spec

    validate(spec)
    assert spec["openapi"] == "3.1.0"
    for op in operations(api.desk.publisher):
        found = spec["paths"]["/api/v1" + op.path][op.method.lower()]
        assert found["operationId"] == op.name
        assert found["security"] == ([] if op.role == "public" else [{"token": []}])
        declared = {int(s) for s in found["responses"]}
        assert declared == {op.status, *op.also, *op.problem_statuses()}, op.name


def test_the_schemas_are_the_models_own(api: Api) -> None:
    schemas = api.check.spec["components"]["schemas"]

    detail = IssueDetail.model_json_schema(ref_template=REF, mode="serialization")
    queue = QueueBody.model_json_schema(ref_template=REF, mode="validation")

    assert schemas["IssueDetail"] == {k: v for k, v in detail.items() if k != "$defs"}
    assert schemas["QueueBody"] == queue
    assert schemas["QueueBody"]["additionalProperties"] is False
    assert schemas["Problem"]["properties"]["type"]["default"] == "about:blank"


# -- bodies ----------------------------------------------------------------------------------
def raw_post(api: Api, path: str, data: bytes, content_type: str = "application/json"
             ) -> requests.Response:
    return api.client().request("POST", path, data=data, headers={"Content-Type": content_type})


NOT_JSON = [b"{bad", b'{"force": tru}', b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000,
            b'{"at": "\\ud800"}', b'{"at": "x"} trailing']


def test_a_body_that_is_not_json_is_a_400(api: Api) -> None:
    for data in NOT_JSON:
        response = raw_post(api, f"/issues/{api.desk.issue_id}/queue", data)

        assert problem(response, 400)["detail"].startswith("the body is not JSON"), data[:20]
    assert api.desk.state() == "draft"


WRONG_FIELDS: list[tuple[str, Any, str, str]] = [
    ("queue", {"force": "yes"}, "force", "Input should be a valid boolean"),
    ("queue", {"force": True, "when": "now"}, "when", "Extra inputs are not permitted"),
    ("queue", {"at": 20261201}, "at", "Input should be a valid string"),
    ("queue", [], "body", "Input should be an object"),
    ("queue", {"at": "2026-12-01\u000008:00"}, "at", "String should match pattern"),
    ("retry", {"unknown": 1}, "unknown", "Input should be a valid boolean"),
    ("test", {"to": ["not an address"]}, "to.0", "An email address must have an @-sign"),
    ("test", {"to": []}, "to", "List should have at least 1 item"),
    ("articles", {"article_id": 2**70}, "article_id", "less than or equal to"),
    ("articles", {"article_id": "3"}, "article_id", "Input should be a valid integer"),
    ("articles", {"article_id": 1, "position": 0}, "position", "greater than or equal"),
    ("articles", {}, "article_id", "Field required"),
]


def test_wrong_fields_are_422s_naming_each(api: Api) -> None:
    for path, body, field, message in WRONG_FIELDS:
        response = api.client().post(f"/issues/{api.desk.issue_id}/{path}", body)

        found = problem(response, 422)
        assert message in fields(response).get(field, ""), (body, found)
        assert found["errors"][0]["in"] == "body"
    assert api.desk.state() == "draft"


def test_drafting_refuses_ids_no_article_can_have(api: Api) -> None:
    response = api.client().post("/issues", {"list": "weekly", "article_ids": [1, 2**63]})

    assert "less than or equal to 9223372036854775807" in fields(response)["article_ids.1"]


def test_a_body_must_say_it_is_json(api: Api) -> None:
    response = raw_post(api, f"/issues/{api.desk.issue_id}/queue", b"force=true",
                        "application/x-www-form-urlencoded")

    assert "application/json" in problem(response, 415)["detail"]


def test_an_empty_body_is_an_empty_object(api: Api) -> None:
    missing = raw_post(api, "/issues", b"")

    assert fields(missing) == {"list": "Field required"}


def answer_of(raw: Any) -> dict[str, Any]:
    head = raw.head.decode("latin-1").lower()
    assert f"content-type: {MEDIA_TYPE}" in head, head
    body: dict[str, Any] = json.loads(raw.body)
    return body


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_is_a_413_problem(api: Api, chunked: bool) -> None:
    body = b'{"subject": "' + b"a" * MAX_BODY + b'"}'
    headers = {"Authorization": f"Bearer {api.editor_token}", "Content-Type": "application/json"}
    sent = iter([body[:1000], body[1000:]]) if chunked else body

    raw = api.web.raw_request("PATCH", f"/api/v1/issues/{api.desk.issue_id}", headers, sent)

    assert raw.status_code == 413
    found = answer_of(raw)
    api.check.problem.validate(found)
    assert found["detail"] == "the body is larger than 256 KiB"


def test_a_long_introduction_within_the_limit_is_read(api: Api) -> None:
    intro = "word " * 10_000

    edited = api.client().ok("PATCH", f"/issues/{api.desk.issue_id}", {"intro_md": intro})

    assert edited["intro_md"] == intro


def test_a_bug_is_a_500_problem_that_tells_nothing_and_is_logged(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(call: Call) -> Findings:
        raise RuntimeError("secret detail")

    table = [Operation("GET", "/broken", "broken", "Broken", broken, Findings, role="public")]
    with WebApp(api_app(api.desk.store, table)) as web:
        response = web.session.get(web.url("/broken"))

    found = problem(response, 500)
    assert "secret detail" not in response.text and "the log says why" in found["detail"]
    assert "API GET /broken failed" in caplog.text and "secret detail" in caplog.text


# -- routes, methods, queries ----------------------------------------------------------------
def test_a_route_that_does_not_exist_is_a_404_problem(api: Api) -> None:
    for path in ("/api/v1/nothing", "/api/v1/", "/api/v1/issues/1/x", "/api/v1/%00",
                 "/api/v1/articles/1/issues", "/api/v1/issues/%0A/articles/1", "/api/v1"):
        response = api.client().session.get(api.web.url(path))

        api.check.check_problem(response)
        assert response.status_code == 404, path
        assert "GET /api/v1/openapi.json lists what there is" in response.json()["detail"]


def test_a_method_a_route_does_not_take_is_a_405_problem(api: Api) -> None:
    response = api.client().request("DELETE", "/issues")

    assert "/api/v1/issues does not take DELETE" in problem(response, 405)["detail"]
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "POST"}


BAD_QUERIES = [
    ({"limit": "abc"}, "limit"), ({"limit": "0"}, "limit"), ({"limit": "201"}, "limit"),
    ({"state": "lost"}, "state"), ({"list": "a\u0000b"}, "list"),
    ({"cursor": "not-a-cursor"}, "cursor"), ({"cursor": "e30"}, "cursor"),
    ({"cursor": "\u2603"}, "cursor"), ({"cursor": "eyJiZWZvcmUiOiAwfQ"}, "cursor"),
]


def test_a_bad_query_parameter_is_a_400_naming_it(api: Api) -> None:
    for query, field in BAD_QUERIES:
        response = api.client().get("/issues", params=query)

        found = problem(response, 400)
        assert field in fields(response), (query, found)
        assert found["errors"][0]["in"] == "query"


def test_article_lists_refuse_an_issue_lists_cursor(api: Api) -> None:
    client = api.client()
    _ = [add_issue(api.desk.store, state=IssueState.SENT) for _ in range(3)]
    cursor = client.ok("GET", "/issues?limit=1")["next_cursor"]

    response = client.get("/articles", params={"cursor": cursor})

    assert "cursor" in fields(problem_of(response, 400))


def problem_of(response: requests.Response, status: int) -> requests.Response:
    problem(response, status)
    return response


# -- walking a list --------------------------------------------------------------------------
def walk(api: Api, path: str, **params: Any) -> list[list[int]]:
    """Every page of a list, following next_cursor: the ids of each."""
    client, pages, cursor = api.client(), [], None
    while True:
        page = client.ok("GET", path + "?" + _query({**params, "cursor": cursor}))
        pages.append([item["id"] for item in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


def flat(pages: list[list[int]]) -> list[int]:
    return list(itertools.chain.from_iterable(pages))


def _query(params: dict[str, Any]) -> str:
    return "&".join(f"{k}={v}" for k, v in params.items() if v is not None)


def test_paging_walks_every_issue_exactly_once(both: Api) -> None:
    api = both
    store = api.desk.store
    states = [IssueState.SENT, IssueState.CANCELLED, IssueState.SENT]
    for n in range(23):
        add_issue(store, list_id="weekly" if n % 2 else "every-article", state=states[n % 3])
    everything = [i["id"] for i in api.client().ok("GET", "/issues?limit=200")["items"]]

    pages = walk(api, "/issues", limit=5)
    sent = walk(api, "/issues", limit=4, state="sent")
    weekly_sent = walk(api, "/issues", limit=3, state="sent", list="weekly")

    assert len(everything) == 25 and everything == sorted(everything, reverse=True)
    assert [len(p) for p in pages] == [5, 5, 5, 5, 5]
    assert flat(pages) == everything
    assert sorted(flat(sent)) == sorted(ids_where(api, state="sent"))
    assert sorted(flat(weekly_sent)) == sorted(ids_where(api, state="sent", list="weekly"))


def ids_where(api: Api, **wanted: str) -> list[int]:
    items = api.client().ok("GET", "/issues?limit=200")["items"]
    return [i["id"] for i in items if all(i[k] == v for k, v in wanted.items())]


def test_issues_added_while_walking_are_not_seen_twice(both: Api) -> None:
    api = both
    for _ in range(6):
        add_issue(api.desk.store)
    client = api.client()

    first = client.ok("GET", "/issues?limit=3")
    for _ in range(4):
        add_issue(api.desk.store)
    rest = walk_from(api, "/issues", first["next_cursor"], limit=3)

    seen = [i["id"] for i in first["items"]] + rest
    assert len(seen) == len(set(seen)) == 8  # the 8 there when the walk began


def walk_from(api: Api, path: str, cursor: str, **params: Any) -> list[int]:
    ids: list[int] = []
    while cursor is not None:
        page = api.client().ok("GET", path + "?" + _query({**params, "cursor": cursor}))
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
    return ids


def add_article(store: Store, uid: str, published: datetime | None) -> int:
    now = store.now()
    with store.engine.begin() as conn:
        return int(conn.execute(insert(articles).values(
            source_id="articles", uid=uid, title=uid, url=f"https://news.example.org/{uid}",
            author="", published_at=published, summary_html="", content_html="", image_url="",
            tags=[], content_hash=uid, first_seen_at=now, updated_at=now, archived=0,
        ).returning(articles.c.id)).scalar_one())


def test_paging_walks_every_article_newest_first_exactly_once(both: Api) -> None:
    api = both
    store = api.desk.store
    same = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    for n in range(7):  # one moment for many: the id keeps their order
        add_article(store, f"same-{n}", same)
    for n in range(3):
        add_article(store, f"undated-{n}", None)
    add_article(store, "old", same - timedelta(days=400))
    with store.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(articles)).scalar_one()

    pages = walk(api, "/articles", limit=3)
    items = api.client().ok("GET", "/articles?limit=200")["items"]

    assert flat(pages) == [a["id"] for a in items]
    assert len(items) == total
    order = [(a["published"] or a["first_seen"], a["id"]) for a in items]
    assert order == sorted(order, reverse=True)


def test_an_article_shows_the_issues_that_carry_it(api: Api) -> None:
    desk = api.desk
    with desk.store.engine.connect() as conn:
        from newsletter.store import issues as issue_store

        article_id = issue_store.article_ids(conn, desk.issue_id)[1]

    shown = api.client().ok("GET", f"/articles/{article_id}")
    missing = api.client().get("/articles/999999")

    assert shown["id"] == article_id
    assert shown["issues"] == [
        {"issue_id": desk.issue_id, "list": "weekly", "state": "draft", "position": 2}
    ]
    assert "no article with id 999999" in problem(missing, 404)["detail"]


# -- the collect hook ------------------------------------------------------------------------
ARTICLE = """---
title: "Quay lights switched on"
date: {date}
---

The lights along the quay came on last night.
"""


def test_collect_finds_a_new_article_at_once(api: Api) -> None:
    folder = api.desk.settings.home / "articles"
    date = f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"
    (folder / "quay-lights.md").write_text(ARTICLE.format(date=date))

    collected = api.client().ok("POST", "/collect")
    newest = api.client().ok("GET", "/articles?limit=1")["items"][0]

    assert collected["new"] == 1
    assert collected["sources"][0]["source_id"] == "articles"
    assert newest["title"] == "Quay lights switched on"
    # The instant list made an issue of it at once, as the scheduler's collection would.
    [instant] = collected["instant"]
    assert instant["list"] == "every-article"
    assert issues_carrying(api, newest["id"]) == instant["drafted"][-1:]


def test_collect_reads_a_source_added_to_the_file_since_the_start(api: Api) -> None:
    """The web app loads the publication file once; a collection asked for there reads it
    again, as each of the scheduler's runs does."""
    api.client().ok("POST", "/collect")  # the file is read, and kept by the app
    add_folder_source(api.desk.settings.home, "notices", ARTICLE.format(
        date=f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"))

    collected = api.client().ok("POST", "/collect")

    assert sorted(s["source_id"] for s in collected["sources"]) == ["articles", "notices"]
    assert collected["new"] == 1


def add_folder_source(home: Path, name: str, article: str) -> None:
    """A folder source ``name`` with one article, added to the publication file."""
    (home / name).mkdir()
    (home / name / "first.md").write_text(article, encoding="utf-8")
    config = home / "subscribers" / "publication.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[sources.articles]", f'[sources.{name}]\ntype = "folder"'
                                   f'\npath = "{name}"\n\n[sources.articles]', 1),
                      encoding="utf-8")


def issues_carrying(api: Api, article_id: int) -> list[int]:
    shown = api.client().ok("GET", f"/articles/{article_id}")
    return [i["issue_id"] for i in shown["issues"] if i["list"] == "every-article"]


def test_hooks_at_once_collect_each_article_once(api: Api) -> None:
    folder = api.desk.settings.home / "articles"
    date = f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"
    (folder / "quay-lights.md").write_text(ARTICLE.format(date=date))
    barrier = threading.Barrier(4)
    answers: list[requests.Response] = []

    def hook() -> None:
        session = requests.Session()
        session.trust_env = False
        barrier.wait()
        answers.append(session.post(api.web.url("/api/v1/collect"),
                                    headers={"Authorization": f"Bearer {api.editor_token}"}))

    threads = [threading.Thread(target=hook) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for answer in answers:
        api.check(answer)
    assert [a.status_code for a in answers] == [200] * 4
    assert sum(a.json()["new"] for a in answers) >= 1
    with api.desk.store.engine.connect() as conn:
        copies = conn.execute(select(func.count()).select_from(articles).where(
            articles.c.title == "Quay lights switched on")).scalar_one()
        [article_id] = conn.execute(select(articles.c.id).where(
            articles.c.title == "Quay lights switched on")).scalars()
    assert copies == 1
    assert len(issues_carrying(api, article_id)) == 1  # drafted once, whoever drafted it


def test_a_hook_waits_for_a_collection_that_starts_after_it() -> None:
    """While one collection runs, later callers share the next one; none gets the result
    of a run that began before it asked."""
    began, release = threading.Event(), threading.Event()
    runs: list[int] = []

    def work() -> int:
        runs.append(len(runs) + 1)
        began.set()
        release.wait(30)
        return runs[-1]

    async def scenario() -> list[int]:
        collect = Coalesced(work)
        first = asyncio.ensure_future(collect())
        await asyncio.to_thread(began.wait, 30)
        later = [asyncio.ensure_future(collect()) for _ in range(3)]
        await asyncio.sleep(0)  # the later callers have asked
        release.set()
        return list(await asyncio.gather(first, *later))

    results = asyncio.run(scenario())

    assert results == [1, 2, 2, 2]
    assert runs == [1, 2]


def test_a_failed_collection_fails_its_callers_and_the_next_runs() -> None:
    attempts: list[int] = []

    def work() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("feed down")
        return "ok"

    async def scenario() -> tuple[BaseException | str, str]:
        collect = Coalesced(work)
        failed = await asyncio.gather(collect(), return_exceptions=True)
        return failed[0], await collect()

    failed, succeeded = asyncio.run(scenario())

    assert isinstance(failed, RuntimeError) and succeeded == "ok"


def test_status_shows_what_the_command_shows(api: Api) -> None:
    desk = api.desk
    desk.publisher.queue(desk.issue_id, desk.clock.now + timedelta(days=1))
    api.client().ok("POST", "/collect")

    status = api.client("admin").ok("GET", "/status")

    assert status["lock"] is None and status["schedule"] == []
    # The weekly queued above, and what the collection's instant list queued of each article.
    with desk.store.engine.connect() as conn:
        queued = [r.id for r in issue_store.find(conn, states_in=[IssueState.QUEUED])]
    assert sorted(i["id"] for i in status["issues"]) == sorted(queued)
    assert desk.issue_id in queued and len(queued) > 1
    assert {i["state"] for i in status["issues"]} == {"queued"}
    assert status["last_collection"]["sources"][0]["source_id"] == "articles"
