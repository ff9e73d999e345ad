"""Two editors, and a sender, acting on one issue at once, over real HTTP on SQLite and
PostgreSQL. Each race is staged with events: one side is held at a known point (the
queue between its checks and its move, the sender between starting and sending, an edit
inside its transaction) while the other acts, then released. Whoever loses is told what the
issue became with a 409, never a 500, and every move in the issue's history is one the
state machine allows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from newsletter.editor import editing
from newsletter.errors import IssueStateError
from newsletter.issues.lint import LintReport
from newsletter.models import ISSUE_TRANSITIONS, IssueState
from newsletter.publisher import Publisher, SendReport
from newsletter.store import issues as issue_store
from tests.desk_support import ADMIN, EDITOR, Desk, alert_of, csrf_of, signed_in
from tests.servers.webapp import WebApp

#: A bound on waiting for the other side of a race; only a hung test gets near it.
WAIT_SECONDS = 60.0
#: What a move that lost its race hears: the state it found was gone when it wrote, or it
#: read the new state before writing.
LOST = "changed state while being updated; try again"
ALREADY_GONE = "only a queued issue can go back to draft"


@pytest.fixture
def web(desk_web: WebApp) -> WebApp:
    return desk_web


@pytest.fixture
def editors(web: WebApp) -> tuple[requests.Session, requests.Session]:
    """Two editors, each signed in with a session of their own."""
    return signed_in(web, EDITOR), signed_in(web, ADMIN)


class Hold:
    """Stands in for ``function``: each call says it has arrived, then waits for
    ``release`` before doing what the function does."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.arrived = threading.Event()
        self.release = threading.Event()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.arrived.set()
        assert self.release.wait(WAIT_SECONDS), "the test never let the held call go on"
        return self.function(*args, **kwargs)

    def as_method(self) -> Callable[..., Any]:
        """A plain function, so that set on a class it is bound like the method it holds."""

        def held(*args: Any, **kwargs: Any) -> Any:
            return self(*args, **kwargs)

        return held


class Background(threading.Thread):
    """Runs ``work`` in a thread of its own, keeping what it returned or raised."""

    def __init__(self, work: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.work = work
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.work()
        except BaseException as exc:  # kept for the test to look at
            self.error = exc

    def outcome(self) -> Any:
        self.join(WAIT_SECONDS)
        assert not self.is_alive(), "the background work did not finish"
        return self.result


def token(web: WebApp, client: requests.Session, issue_id: int) -> str:
    return csrf_of(client.get(web.url(f"/desk/issues/{issue_id}")).text)


def post(web: WebApp, client: requests.Session, issue_id: int, action: str, csrf: str,
         **fields: str) -> requests.Response:
    return client.post(web.url(f"/desk/issues/{issue_id}/{action}"),
                       data={"csrf": csrf, **fields}, allow_redirects=False)


def lawful_history(desk: Desk) -> list[tuple[str | None, str]]:
    """The issue's moves, each checked against the state machine (a move to the same state
    is an edit or a new time, recorded as such)."""
    with desk.store.engine.connect() as conn:
        events = issue_store.events(conn, desk.issue_id)
    moves = [(e["from"] or None, str(e["to"])) for e in events]
    for before, after in moves[1:]:
        assert before is not None
        if before != after:
            assert IssueState(after) in ISSUE_TRANSITIONS[IssueState(before)], (before, after)
    return moves  # type: ignore[return-value]


@pytest.fixture
def held_queue(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hold]:
    """Every queue stops between its pre-send checks and its move to queued."""
    hold = Hold(LintReport.check_queueable)
    monkeypatch.setattr(LintReport, "check_queueable", hold.as_method())
    yield hold
    hold.release.set()


def queue_and(web: WebApp, desk: Desk, editors: tuple[requests.Session, requests.Session],
              held: Hold, action: str, *, during: bool) -> tuple[requests.Response, ...]:
    """The first editor queues the issue; the second presses ``action`` while the queue is
    held between its checks and its move (``during``), or once it has landed. Both answers,
    the queue's first."""
    queuer, other = editors
    queue_token, other_token = token(web, queuer, desk.issue_id), token(web, other,
                                                                        desk.issue_id)
    queueing = Background(lambda: post(web, queuer, desk.issue_id, "queue", queue_token))
    queueing.start()
    assert held.arrived.wait(WAIT_SECONDS)
    if not during:
        held.release.set()
        queueing.outcome()
    answered = post(web, other, desk.issue_id, action, other_token)
    held.release.set()
    return queueing.outcome(), answered


# -- pause while another editor queues ------------------------------------------------------
def test_a_pause_while_the_queue_checks_is_refused_and_the_queue_goes_on(
    desk: Desk, web: WebApp, editors: tuple[requests.Session, requests.Session],
    held_queue: Hold,
) -> None:
    queued, paused = queue_and(web, desk, editors, held_queue, "pause", during=True)

    assert paused.status_code == 409
    assert f"issue {desk.issue_id} is draft; it cannot become paused" in alert_of(paused)
    assert queued.status_code == 303
    assert desk.state() == "queued"
    assert lawful_history(desk) == [(None, "draft"), ("draft", "queued")]


def test_a_pause_after_the_queue_lands_pauses_it(
    desk: Desk, web: WebApp, editors: tuple[requests.Session, requests.Session],
    held_queue: Hold,
) -> None:
    queued, paused = queue_and(web, desk, editors, held_queue, "pause", during=False)

    assert queued.status_code == 303 and paused.status_code == 303
    assert desk.state() == "paused"
    assert lawful_history(desk)[-2:] == [("draft", "queued"), ("queued", "paused")]


def test_a_cancel_while_the_queue_checks_wins_and_the_queue_is_told(
    desk: Desk, web: WebApp, editors: tuple[requests.Session, requests.Session],
    held_queue: Hold,
) -> None:
    late, cancelled = queue_and(web, desk, editors, held_queue, "cancel", during=True)

    assert cancelled.status_code == 303
    assert late.status_code == 409
    assert f"issue {desk.issue_id} is cancelled; it cannot become queued" in alert_of(late)
    assert desk.state() == "cancelled"
    assert lawful_history(desk) == [(None, "draft"), ("draft", "cancelled")]


# -- edit while the issue starts sending ----------------------------------------------------
def sender(desk: Desk) -> Background:
    """The scheduler's send of the issue, by a publisher of its own, in a thread."""
    publisher = Publisher(desk.settings, desk.store)
    return Background(lambda: publisher.send_issue(desk.issue_id))


def test_an_edit_from_a_page_shown_before_the_send_started_is_refused(
    desk: Desk, web: WebApp, editors: tuple[requests.Session, requests.Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writer, _ = editors
    stale = token(web, writer, desk.issue_id)  # the edit form of the draft, still open
    editing.queue(desk.publisher, desk.issue_id)
    started = Hold(Publisher._freeze)  # the sender has moved it to sending, and waits
    monkeypatch.setattr(Publisher, "_freeze", started.as_method())
    sending = sender(desk)
    sending.start()
    assert started.arrived.wait(WAIT_SECONDS)

    edited = post(web, writer, desk.issue_id, "edit", stale, subject="Last-minute change",
                  preheader="", intro="")
    back = post(web, writer, desk.issue_id, "unqueue", stale)
    started.release.set()
    report: SendReport = sending.outcome()

    assert edited.status_code == 409
    assert (f"issue {desk.issue_id} is sending; only drafts can be edited"
            in alert_of(edited))
    assert back.status_code == 409
    assert f"issue {desk.issue_id} is sending; only a queued issue" in alert_of(back)
    assert sending.error is None and report.final_state == "sent"
    with desk.store.engine.connect() as conn:
        assert issue_store.get(conn, desk.issue_id).subject != "Last-minute change"
    assert [m[1] for m in lawful_history(desk)] == ["draft", "queued", "sending", "sent"]


def test_a_send_that_starts_during_an_edit_finds_a_draft_and_leaves_it(
    desk: Desk, web: WebApp, editors: tuple[requests.Session, requests.Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The editor took the queued issue back to draft and is saving new words when the
    scheduler, which found it due a moment before, tries to start it."""
    writer, _ = editors
    editing.queue(desk.publisher, desk.issue_id)
    assert post(web, writer, desk.issue_id, "unqueue",
                token(web, writer, desk.issue_id)).status_code == 303
    saving = Hold(issue_store.edit)  # inside the edit's transaction, the draft in hand
    monkeypatch.setattr(issue_store, "edit", saving)
    csrf = token(web, writer, desk.issue_id)
    editing_now = Background(lambda: post(web, writer, desk.issue_id, "edit", csrf,
                                          subject="New words", preheader="", intro=""))
    editing_now.start()
    assert saving.arrived.wait(WAIT_SECONDS)

    sending = sender(desk)
    sending.start()
    sending.outcome()
    saving.release.set()
    edited = editing_now.outcome()

    assert isinstance(sending.error, IssueStateError)
    assert str(sending.error) == f"issue {desk.issue_id} is a draft; queue it before sending"
    assert edited.status_code == 303
    with desk.store.engine.connect() as conn:
        record = issue_store.get(conn, desk.issue_id)
    assert (record.state, record.subject) == ("draft", "New words")
    assert [m[1] for m in lawful_history(desk)] == ["draft", "queued", "draft", "draft"]


def test_back_to_draft_and_the_send_starting_at_once_leave_one_winner(
    desk: Desk, web: WebApp, editors: tuple[requests.Session, requests.Session],
) -> None:
    """No hold: both set off together from a barrier, and either may win. Whichever does,
    the other is refused with the issue's state, and the editor's next edit agrees."""
    writer, _ = editors
    editing.queue(desk.publisher, desk.issue_id)
    csrf = token(web, writer, desk.issue_id)
    together = threading.Barrier(2, timeout=WAIT_SECONDS)
    publisher = Publisher(desk.settings, desk.store)

    def send() -> SendReport:
        together.wait()
        return publisher.send_issue(desk.issue_id)

    def unqueue() -> requests.Response:
        together.wait()
        return post(web, writer, desk.issue_id, "unqueue", csrf)

    sending, going_back = Background(send), Background(unqueue)
    sending.start()
    going_back.start()
    back = going_back.outcome()
    sending.outcome()
    edited = post(web, writer, desk.issue_id, "edit", csrf, subject="After the race",
                  preheader="", intro="")

    assert back.status_code in (303, 409)
    if back.status_code == 303:  # the editor was first: nothing went out
        assert isinstance(sending.error, IssueStateError)
        assert desk.state() == "draft" and edited.status_code == 303
    else:  # the sender was first: it went out, and the editor is told so
        assert sending.error is None and desk.state() == "sent"
        assert LOST in alert_of(back) or ALREADY_GONE in alert_of(back)
        assert edited.status_code == 409 and "only drafts can be edited" in alert_of(edited)
    lawful_history(desk)
