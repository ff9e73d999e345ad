"""Issues over the API, on SQLite and PostgreSQL, served by uvicorn: the whole life of a
draft through the same functions the command line and the desk call, recorded as
``api:<token>``; send times that cannot be; the state machine's and the pre-send checks'
refusals as problems; and clients racing each other."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from newsletter.models import ISSUE_TRANSITIONS, IssueState
from newsletter.store import issues as issue_store
from newsletter.web.api import tokens
from tests.api_support import EDITOR_TOKEN, Api, Client, fields, problem, serve_api
from tests.desk_support import XSS_TITLE, Desk

ACTOR = f"api:{EDITOR_TOKEN}"


@pytest.fixture
def api(desk: Desk) -> Iterator[Api]:
    yield from serve_api(desk)


def article_ids(desk: Desk, issue_id: int | None = None) -> list[int]:
    with desk.store.engine.connect() as conn:
        return issue_store.article_ids(conn, issue_id or desk.issue_id)


def history(desk: Desk, issue_id: int) -> list[dict[str, Any]]:
    with desk.store.engine.connect() as conn:
        return issue_store.events(conn, issue_id)


def spring_gap(after: datetime) -> str:
    """01:30 on the night next year that London's clocks jump from 01:00 to 02:00 (the
    last Sunday of March): a time that never happens there."""
    year = after.year + 1
    sunday = max(d for d in (datetime(year, 3, n) for n in range(25, 32)) if d.weekday() == 6)
    return f"{sunday:%Y-%m-%d} 01:30"


def test_a_draft_from_start_to_cancel(api: Api) -> None:
    desk, client = api.desk, api.client()
    first, second, third, *_ = article_ids(desk)

    refused = client.post("/issues", {"list": "weekly", "article_ids": [first, second]})
    made = client.post("/issues", {"list": "weekly", "article_ids": [first, second],
                                   "again": True, "subject": "From a script"})

    assert 'give "again": true' in fields(refused)["article_ids"]
    assert made.status_code == 201, made.text
    (issue,) = made.json()["issues"]
    issue_id = issue["id"]
    assert made.headers["Location"] == f"/api/v1/issues/{issue_id}"
    assert issue["subject"] == "From a script" and issue["state"] == "draft"

    edited = client.ok("PATCH", f"/issues/{issue_id}",
                       {"subject": "Harbour news", "intro_md": "Hello **readers**"})
    assert (edited["subject"], edited["intro_md"]) == ("Harbour news", "Hello **readers**")
    assert edited["history"][-1]["note"] == "edited subject, intro_md"

    path = f"/issues/{issue_id}/articles"
    added = client.ok("POST", path, {"article_id": third, "again": True})
    moved = client.ok("PUT", f"{path}/{third}", {"position": 1})
    removed = client.ok("DELETE", f"{path}/{first}")
    assert [a["id"] for a in added["articles"]] == [first, second, third]
    assert [a["id"] for a in moved["articles"]] == [third, first, second]
    assert [(a["position"], a["id"]) for a in removed["articles"]] == [(1, third), (2, second)]

    findings = client.ok("GET", f"/issues/{issue_id}/check")
    assert findings["errors"] == []

    sent = client.ok("POST", f"/issues/{issue_id}/test", {"to": ["editor@example.org"]})
    assert sent["results"] == ["editor@example.org: sent"]
    folder = desk.settings.outbox_path / f"test-issue-{issue_id}-weekly"
    (eml,) = folder.glob("*.eml")
    assert b"[TEST]" in eml.read_bytes()

    at = f"{desk.clock.now.year + 1}-06-01 08:00"
    queued = client.ok("POST", f"/issues/{issue_id}/queue", {"at": at})
    assert queued["issue"]["state"] == "queued" and queued["issue"]["send_at_local"] == at
    assert queued["issue"]["timezone"] == "Europe/London"
    assert queued["issue"]["send_at"].endswith("07:00:00Z")  # British summer time
    steps = [("unqueue", None, "draft"), ("queue", {}, "queued"), ("pause", None, "paused"),
             ("resume", None, "queued"), ("cancel", None, "cancelled")]
    for action, body, state in steps:
        answer = client.ok("POST", f"/issues/{issue_id}/{action}", body)
        assert answer["issue"]["state"] == state, action

    shown = client.ok("GET", f"/issues/{issue_id}")
    moves = [(e["from"], e["to"]) for e in shown["history"] if e["from"] != e["to"]]
    assert moves == [("", "draft"), ("draft", "queued"), ("queued", "draft"),
                     ("draft", "queued"), ("queued", "paused"), ("paused", "queued"),
                     ("queued", "cancelled")]
    assert {e["by"] for e in shown["history"]} == {ACTOR}
    assert {e["by"] for e in history(desk, issue_id)} == {ACTOR}


def test_an_issue_shows_its_record_articles_counts_and_history(api: Api) -> None:
    desk = api.desk
    desk.publisher.queue(desk.issue_id)

    shown = api.client().ok("GET", f"/issues/{desk.issue_id}")

    assert shown["id"] == desk.issue_id and shown["list"] == "weekly"
    assert shown["number"] == 1 and shown["kind"] == "digest"
    assert [a["id"] for a in shown["articles"]] == article_ids(desk)
    assert shown["articles"][0]["position"] == 1
    assert shown["recipients"] == {}
    assert [e["to"] for e in shown["history"]] == ["draft", "queued"]
    assert {e["by"] for e in shown["history"]} == {"system"}  # not the API: made directly
    assert shown["audience"] is None  # not frozen yet
    desk.publisher.send_issue(desk.issue_id)
    sent = api.client().ok("GET", f"/issues/{desk.issue_id}")["audience"]
    assert sent["summary"] == "read from the list's files" and sent["copied_from"] is None
    assert sent["rows"] == sum(api.client().ok("GET", f"/issues/{desk.issue_id}/report")[
        "outcomes"].values())


def test_send_times_that_cannot_be_are_422s_naming_at(api: Api) -> None:
    desk, client = api.desk, api.client()
    path = f"/issues/{desk.issue_id}/queue"

    gap = client.post(path, {"at": spring_gap(desk.clock.now)})
    past = client.post(path, {"at": "2020-01-01 08:00"})
    nonsense = client.post(path, {"at": "next tuesday"})

    assert "daylight-saving gap" in fields(gap)["at"]
    assert problem(gap, 422)["detail"].startswith("at ")
    assert "is in the past" in fields(past)["at"] and "--at" not in past.text
    assert "expected a time like '2026-12-01 08:00'" in fields(nonsense)["at"]
    assert desk.state() == "draft"


def test_a_time_that_happens_twice_is_the_first_and_says_so(api: Api) -> None:
    desk = api.desk
    year = desk.clock.now.year + 1
    sunday = max(d for d in (datetime(year, 10, n) for n in range(25, 32)) if d.weekday() == 6)

    queued = api.client().ok("POST", f"/issues/{desk.issue_id}/queue",
                             {"at": f"{sunday:%Y-%m-%d} 01:30"})

    assert "happens twice in Europe/London" in queued["note"]
    assert queued["issue"]["send_at"].endswith("00:30:00Z")


def test_a_move_the_machine_refuses_is_a_409_with_its_message(api: Api) -> None:
    desk, client = api.desk, api.client()

    paused = client.post(f"/issues/{desk.issue_id}/pause")
    desk.publisher.queue(desk.issue_id)
    edited = client.request("PATCH", f"/issues/{desk.issue_id}", json={"subject": "Late"})
    queued_twice = client.post(f"/issues/{desk.issue_id}/queue")

    assert (f"issue {desk.issue_id} is draft; it cannot become paused"
            in problem(paused, 409)["detail"])
    assert "queued" in problem(edited, 409)["detail"]
    assert "already queued" in problem(queued_twice, 409)["detail"]
    assert desk.state() == "queued"


def test_the_checks_findings_come_with_a_refused_queue(api: Api) -> None:
    desk = api.desk
    (article_id,) = article_ids(desk, desk.xss_issue_id)
    api.client().ok("DELETE", f"/issues/{desk.xss_issue_id}/articles/{article_id}")

    refused = api.client().post(f"/issues/{desk.xss_issue_id}/queue", {"force": True})
    checked = api.client().ok("GET", f"/issues/{desk.xss_issue_id}/check")

    found = problem(refused, 409)
    assert found["detail"] == "the pre-send checks refused it"
    assert any("the issue is empty" in f for f in found["findings"])
    assert any("the issue is empty" in e for e in checked["errors"])
    assert desk.state(desk.xss_issue_id) == "draft"


def test_drafting_answers_what_it_made(api: Api) -> None:
    client = api.client()
    client.post("/issues", {"list": "weekly"})  # whatever the desk's drafts left out

    nothing_new = client.post("/issues", {"list": "weekly"})
    unknown_list = client.post("/issues", {"list": "monthly"})
    unknown_article = client.post("/issues", {"list": "weekly", "article_ids": [999999]})

    assert nothing_new.status_code == 200 and nothing_new.json() == {"issues": []}
    assert "no list 'monthly'" in fields(unknown_list)["list"]
    assert "no article with id 999999" in fields(unknown_article)["article_ids"]


def test_a_drafts_articles_refused_name_the_field(api: Api) -> None:
    desk, client = api.desk, api.client()
    path = f"/issues/{desk.issue_id}/articles"
    first = article_ids(desk)[0]

    twice = client.post(path, {"article_id": first})
    missing = client.post(path, {"article_id": 999999})
    far = client.request("PUT", f"{path}/{first}", json={"position": 99})
    not_in = client.request("DELETE", f"{path}/999999")

    assert "already in issue" in fields(twice)["article_id"]
    assert "no article with id 999999" in fields(missing)["article_id"]
    assert fields(far)["position"].startswith("position 99: issue")
    assert f"article 999999 is not in issue {desk.issue_id}" in problem(not_in, 404)["detail"]


def test_a_preview_is_the_message_the_sample_reader_would_get(api: Api) -> None:
    desk, client = api.desk, api.client()
    client.ok("PATCH", f"/issues/{desk.issue_id}", {"subject": "Ferry news & more"})

    shown = client.ok("GET", f"/issues/{desk.issue_id}/preview")

    assert (shown["issue_id"], shown["to"]) == (desk.issue_id, "reader@example.org")
    assert shown["subject"] == "Ferry news & more"
    assert "<title>Ferry news &amp; more</title>" in shown["html"]  # rendered again on edit
    titles = [a["title"] for a in client.ok("GET", f"/issues/{desk.issue_id}")["articles"]]
    assert titles and all(t in shown["text"] for t in titles)
    assert 'style="' in shown["html"]  # the CSS inlined, as mail programs need it
    token = re.search(r"/unsubscribe/([\w.-]+)", shown["text"])
    assert token, shown["text"][-500:]
    signed = desk.publisher.signer.verify(token.group(1))
    assert (signed.email, signed.list_id) == ("reader@example.org", "weekly")


def test_a_preview_cannot_be_merged_for_a_chosen_reader(api: Api) -> None:
    """Merged for anyone named, it would hand a token holder that reader's unsubscribe
    link: the sample reader is the only one, whatever the query says."""
    desk, client = api.desk, api.client()

    shown = client.ok("GET", f"/issues/{desk.issue_id}/preview?to=victim@example.org"
                      "&email=victim@example.org")

    assert shown["to"] == "reader@example.org"
    assert "victim" not in shown["html"] + shown["text"]


def test_a_preview_carries_hostile_titles_as_text(api: Api) -> None:
    shown = api.client().get(f"/issues/{api.desk.xss_issue_id}/preview")

    assert shown.headers["Content-Type"] == "application/json"
    html = shown.json()["html"]
    assert XSS_TITLE not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script" not in html.lower()


def test_unknown_issues_are_404s(api: Api) -> None:
    client = api.client()

    for path in ("/issues/999999", "/issues/999999/check", "/issues/999999/preview",
                 "/issues/" + "9" * 40, "/issues/abc", "/issues/0", "/issues/-1"):
        assert "no issue" in problem(client.get(path), 404)["detail"], path
    for action in ("queue", "pause", "cancel", "test", "retry"):
        problem(client.post(f"/issues/999999/{action}", {}), 404)


def test_retry_and_an_empty_test_send(api: Api) -> None:
    desk, client = api.desk, api.client()

    retried = client.ok("POST", f"/issues/{desk.issue_id}/retry", {"unknown": True})
    no_one = client.post(f"/issues/{desk.issue_id}/test", {})

    assert retried["requeued"] == 0 and retried["issue"]["state"] == "draft"
    assert "NEWSLETTER_TEST_RECIPIENTS" in fields(no_one)["to"]


# -- clients racing --------------------------------------------------------------------------
RACERS = {"alice": "queue", "bob": "pause", "carol": "cancel"}


def race(api: Api, issue_id: int, keys: dict[str, str]) -> dict[str, requests.Response]:
    """Each racer's request, sent at the same moment from a thread of its own."""
    barrier = threading.Barrier(len(RACERS))
    answers: dict[str, requests.Response] = {}

    def run(name: str) -> None:
        session = requests.Session()
        session.trust_env = False
        url = api.web.url(f"/api/v1/issues/{issue_id}/{RACERS[name]}")
        barrier.wait()
        answers[name] = session.post(url, headers={"Authorization": f"Bearer {keys[name]}"})

    threads = [threading.Thread(target=run, args=(name,)) for name in RACERS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_racing_clients_each_get_an_allowed_outcome(api: Api) -> None:
    desk = api.desk
    keys = {name: tokens.create(desk.store, name, "editor") for name in RACERS}
    articles = article_ids(desk)

    for _ in range(4):
        (issue_id,) = desk.publisher.draft("weekly", article_ids=articles)
        answers = race(api, issue_id, keys)

        for name, answer in answers.items():
            api.check(answer)
            assert answer.status_code in (200, 409), (name, answer.text)
            if answer.status_code == 409:
                assert f"issue {issue_id}" in problem(answer, 409)["detail"]
        events = history(desk, issue_id)[1:]
        winners = sorted(f"api:{n}" for n, a in answers.items() if a.status_code == 200)
        assert sorted(e["by"] for e in events) == winners
        state = IssueState.DRAFT
        for event in events:
            assert event["from"] == state and IssueState(event["to"]) in ISSUE_TRANSITIONS[state]
            state = IssueState(event["to"])
        assert desk.state(issue_id) == state


def test_two_clients_queue_one_draft_at_once(api: Api) -> None:
    desk = api.desk
    second = tokens.create(desk.store, "second", "editor")
    clients = [api.client(), Client(api.web, api.check, second)]
    barrier = threading.Barrier(2)
    answers: list[requests.Response] = []

    def queue(client: Client) -> None:
        barrier.wait()
        answers.append(client.session.post(
            api.web.url(f"/api/v1/issues/{desk.issue_id}/queue"),
            headers={"Authorization": f"Bearer {client.token}"},
            json={"at": f"{desk.clock.now + timedelta(days=3):%Y-%m-%d %H:%M}"},
        ))

    threads = [threading.Thread(target=queue, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(a.status_code for a in answers) == [200, 409]
    for answer in answers:
        api.check(answer)
    assert desk.state() == "queued"
    assert [e["to"] for e in history(desk, desk.issue_id)] == ["draft", "queued"]
