"""The outcome counts the desk and the API show (``store.watch.outcome_counts``, counted from
the batches and the rows recorded otherwise) against every row counted by status
(``tally.status_counts``, folded into outcomes), on SQLite and PostgreSQL: mid-send, after
the send, after provider events change statuses, after a reader is forgotten, after a
retry, and with a suppression added during the send. Each time the issue's page, the issues
list and the API's issue answer are read over HTTP with the full count made to fail, so
they can only have used the cheap one. And ``store.shared``: requests that arrive together
share one count, never one that started before they asked.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from sqlalchemy import insert, select

from newsletter.lists.config import load_config
from newsletter.lists.forget import forget
from newsletter.models import DeliveryStatus, SuppressionReason, WebhookEvent
from newsletter.store import Store, suppressions, tally, watch
from newsletter.store import events as event_store
from newsletter.store.shared import Shared
from newsletter.store.tables import batches, recipients
from newsletter.web.api import tokens
from tests.desk_sending import REFUSED, watched_send
from tests.desk_support import Desk, signed_in
from tests.servers.webapp import WebApp, add_issue

STATUS_COUNTS = tally.status_counts  # the reference, kept before a test makes it fail


@dataclass
class Readers:
    """The desk's issue page and issues list, signed in, and the API with a token."""

    web: WebApp
    desk: requests.Session
    api: requests.Session


@pytest.fixture
def readers(desk: Desk, desk_web: WebApp) -> Readers:
    api = requests.Session()
    api.trust_env = False
    api.headers["Authorization"] = "Bearer " + tokens.create(desk.store, "counter", "editor")
    return Readers(desk_web, signed_in(desk_web), api)


def expected(store: Store, issue_id: int) -> dict[str, int]:
    """Every row counted by status, folded into outcomes."""
    with store.engine.connect() as conn:
        return watch.outcomes(STATUS_COUNTS(conn, issue_id))


@contextmanager
def without_full_counts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Counting every row fails meanwhile: whatever answers used the cheap count."""

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a page counted every row")

    with monkeypatch.context() as patched:
        patched.setattr(tally, "status_counts", refused)
        patched.setattr(tally, "status_counts_of", refused)
        yield


def number(pattern: str, text: str) -> int:
    found = re.search(pattern, text)
    assert found is not None, f"{pattern} is not in the page"
    return int(found.group(1).replace(",", ""))


def from_issue_page(html: str) -> dict[str, int]:
    """The progress block's numbers, one ``data-field`` each."""
    return {o: number(rf'data-field="{o}">([\d,]+)<', html) for o in watch.OUTCOMES}


def from_issues_list(html: str, issue_id: int) -> dict[str, int]:
    """The issue's row of the list: its sent, failed and unknown columns."""
    row = re.search(rf'<td data-label="#">{issue_id}</td>.*?</tr>', html, re.S)
    assert row is not None, f"issue {issue_id} is not listed"
    return {o: number(rf'data-label="{o.title()}" class="num">([\d,]+)<', row.group(0))
            for o in ("sent", "failed", "unknown")}


def shown(readers: Readers, issue_id: int, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, int]]:
    """What the issue's page, the issues list and the API show, each as outcomes."""
    with without_full_counts(monkeypatch):
        page = readers.desk.get(readers.web.url(f"/desk/issues/{issue_id}"))
        listing = readers.desk.get(readers.web.url("/desk/issues"))
        answer = readers.api.get(readers.web.url(f"/api/v1/issues/{issue_id}"))
    for response in (page, listing, answer):
        assert response.status_code == 200, response.text[:500]
    from_api = dict.fromkeys(watch.OUTCOMES, 0) | answer.json()["recipients"]
    return [from_issue_page(page.text), from_issues_list(listing.text, issue_id), from_api]


def assert_shown_right(readers: Readers, desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    want = expected(desk.store, desk.issue_id)
    page, listing, api = shown(readers, desk.issue_id, monkeypatch)
    assert page == want
    assert listing == {o: want[o] for o in listing}
    assert api == want


# -- against the ledger ------------------------------------------------------------------------
def test_mid_send_and_after_it(
    desk: Desk, readers: Readers, monkeypatch: pytest.MonkeyPatch
) -> None:
    with watched_send(desk, hold_at=3) as send:
        assert send.provider.held.wait(60), "the third batch never went out"
        assert_shown_right(readers, desk, monkeypatch)
        assert expected(desk.store, desk.issue_id)["pending"] > 0  # truly mid-send
        send.finish()
    assert_shown_right(readers, desk, monkeypatch)
    assert expected(desk.store, desk.issue_id)["failed"] == 1


def test_provider_events_move_rows_between_outcomes(
    desk: Desk, readers: Readers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A late "delivered" turns the refused row from failed into sent; bounces and opens
    keep their rows sent."""
    with watched_send(desk, hold_at=0) as send:
        send.finish()
    assert_shown_right(readers, desk, monkeypatch)
    whole, own = sent_rows(desk)
    opened = min(email for email in whole if email != REFUSED)
    bounced = min(own)
    at = desk.store.now()
    happened = [
        WebhookEvent("mailgun", "late", DeliveryStatus.DELIVERED, REFUSED, whole[REFUSED], at),
        WebhookEvent("mailgun", "hard", DeliveryStatus.BOUNCED_HARD, bounced, own[bounced], at),
        WebhookEvent("mailgun", "open", DeliveryStatus.OPENED, opened, whole[opened], at),
    ]
    with desk.store.engine.begin() as conn:
        assert event_store.apply_events(conn, happened, soft_bounce_limit=3, now=at) == 3
    after = expected(desk.store, desk.issue_id)
    assert after["failed"] == 0
    assert_shown_right(readers, desk, monkeypatch)


def test_forgetting_a_reader_suppresses_their_failed_row(
    desk: Desk, readers: Readers, monkeypatch: pytest.MonkeyPatch
) -> None:
    with watched_send(desk, hold_at=0) as send:
        send.finish()
    assert_shown_right(readers, desk, monkeypatch)  # a count that would stay stale is made
    before = expected(desk.store, desk.issue_id)
    forget(load_config(desk.settings), desk.store, desk.settings.var_dir, REFUSED)
    after = expected(desk.store, desk.issue_id)
    assert (after["failed"], after["suppressed"]) == (0, before["suppressed"] + 1)
    assert_shown_right(readers, desk, monkeypatch)


def test_a_retry_and_its_send(
    desk: Desk, readers: Readers, monkeypatch: pytest.MonkeyPatch
) -> None:
    with watched_send(desk, hold_at=0) as send:
        send.finish()
    assert send.publisher.retry(desk.issue_id) == 1
    assert_shown_right(readers, desk, monkeypatch)  # queued again: one row pending
    assert expected(desk.store, desk.issue_id)["pending"] == 1
    send.publisher.send_issue(desk.issue_id)  # the provider refuses it again
    assert_shown_right(readers, desk, monkeypatch)
    assert expected(desk.store, desk.issue_id)["failed"] == 1


def test_a_suppression_added_during_the_send(
    desk: Desk, readers: Readers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its row, in a batch not sent yet, is suppressed when that batch goes out."""
    late = "reader.20@example.org"
    with watched_send(desk, hold_at=3) as send:
        assert send.provider.held.wait(60), "the third batch never went out"
        with desk.store.engine.begin() as conn:
            suppressions.add(conn, late, SuppressionReason.MANUAL, source="test",
                             detail="asked by phone", at=desk.store.now())
        assert_shown_right(readers, desk, monkeypatch)
        send.finish()
    with desk.store.engine.connect() as conn:
        status = conn.execute(select(recipients.c.status).where(
            recipients.c.issue_id == desk.issue_id, recipients.c.email == late)).scalar_one()
    assert status == DeliveryStatus.SUPPRESSED
    assert_shown_right(readers, desk, monkeypatch)


def sent_rows(desk: Desk) -> tuple[dict[str, str], dict[str, str]]:
    """Addresses of the issue with the message id a provider event names them by: rows of
    batches sent under one id, and rows with an id of their own."""
    with desk.store.engine.connect() as conn:
        found = conn.execute(
            select(recipients.c.email, recipients.c.provider_message_id,
                   batches.c.provider_batch_id)
            .join_from(recipients, batches, batches.c.id == recipients.c.batch_id)
            .where(recipients.c.issue_id == desk.issue_id)
        ).all()
    whole = {email: batch_id for email, own, batch_id in found if batch_id and not own}
    own = {email: own for email, own, _ in found if own}
    return whole, own


# -- a page of issues at once ------------------------------------------------------------------
def test_a_page_of_issues_counts_as_each_issue_alone(desk: Desk) -> None:
    """More issues than one statement counts unbatched rows for, with such rows in the last
    ones: the page's counts are each issue's own."""
    store = desk.store
    made = [add_issue(store, started_at=store.now()) for _ in range(watch._UNBATCHED_CHUNK + 3)]
    with store.engine.begin() as conn:
        for n, issue_id in enumerate(made[-4:]):
            conn.execute(insert(recipients), [
                {"issue_id": issue_id, "email": f"r{n}-{i}@example.org", "list_id": "weekly",
                 "status": status, "updated_at": store.now()}
                for i, status in enumerate(["suppressed", "sent", "failed", "queued"][:n + 1])
            ])
    asked = [*made, desk.issue_id, 999_999]
    with store.engine.connect() as conn:
        together = watch.outcome_counts_of(conn, asked)
        alone = {i: watch.outcome_counts(conn, i) for i in asked}
        folded = {i: watch.outcomes(STATUS_COUNTS(conn, i)) for i in asked}
    assert together == alone == folded
    assert together[made[-1]] == {"sent": 1, "failed": 1, "unknown": 0, "suppressed": 1,
                                  "pending": 1}


# -- sharing a count ---------------------------------------------------------------------------
class Gate:
    """Work that says when it starts and waits to be let go; returns its run's number."""

    def __init__(self) -> None:
        self.runs = 0
        self.started = threading.Semaphore(0)
        self.go = threading.Event()
        self.lock = threading.Lock()

    def __call__(self) -> int:
        with self.lock:
            self.runs += 1
            run = self.runs
        self.started.release()
        assert self.go.wait(30), "never let go"
        return run


def in_threads(calls: list[Callable[[], int]]) -> tuple[list[threading.Thread], list[Any]]:
    """Each call in a thread of its own, started; what each returned (or raised)."""
    results: list[Any] = [None] * len(calls)

    def call(n: int) -> None:
        try:
            results[n] = calls[n]()
        except Exception as exc:
            results[n] = exc

    threads = [threading.Thread(target=call, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    return threads, results


def wait_until(condition: Callable[[], bool]) -> None:
    done = threading.Event()
    for _ in range(30_000):
        if condition():
            return
        done.wait(0.001)
    raise AssertionError("the condition never held")


def test_callers_arriving_during_a_run_share_the_next_one() -> None:
    shared: Shared[str, int] = Shared()
    gate = Gate()
    first, first_result = in_threads([lambda: shared("issue", gate)])
    assert gate.started.acquire(timeout=30)  # run 1 is under way
    later, later_results = in_threads([lambda: shared("issue", gate)] * 3)
    wait_until(lambda: shared.callers("issue") == (1, 3))
    gate.go.set()
    for thread in first + later:
        thread.join(30)
    assert first_result == [1]
    assert later_results == [2, 2, 2]  # none was given run 1, which began before they asked
    assert gate.runs == 2


def test_a_caller_asked_before_a_run_began_may_share_it() -> None:
    """Said when it was asked, a caller joins the run in progress if that began later; one
    asked after it began waits for the next."""
    shared: Shared[str, int] = Shared()
    gate = Gate()
    asked = time.monotonic()
    first, first_result = in_threads([lambda: shared("issue", gate)])
    assert gate.started.acquire(timeout=30)  # run 1 began after ``asked``
    early, early_result = in_threads([lambda: shared("issue", gate, asked)])
    wait_until(lambda: shared.callers("issue") == (2, 0))
    late_at = time.monotonic()
    late, late_result = in_threads([lambda: shared("issue", gate, late_at)])
    wait_until(lambda: shared.callers("issue") == (2, 1))
    gate.go.set()
    for thread in first + early + late:
        thread.join(30)
    assert (first_result, early_result, late_result) == ([1], [1], [2])


def test_other_keys_do_not_wait_and_a_failed_run_is_not_shared() -> None:
    shared: Shared[str, int] = Shared()
    gate = Gate()
    held, _ = in_threads([lambda: shared("one", gate)])
    assert gate.started.acquire(timeout=30)
    assert shared("two", lambda: 7) == 7  # while "one" is held

    def failing() -> int:
        raise RuntimeError("the database went away")

    leading, led = in_threads([lambda: shared("one", failing)])
    wait_until(lambda: shared.callers("one")[1] == 1)
    joining, joined = in_threads([lambda: shared("one", lambda: 5)])
    wait_until(lambda: shared.callers("one")[1] == 2)
    gate.go.set()
    for thread in held + leading + joining:
        thread.join(30)
    assert isinstance(led[0], RuntimeError)
    assert joined == [5]  # its own work, not the failure of the run it waited on
