"""Every illegal move of the issue state machine is refused: through the store, and through
each CLI command that asks for a move. A refused move changes nothing and records nothing.

The commands ask for three moves (``queue``, ``cancel``, ``pause``); ``resume`` and ``retry``
add rules of their own. The other moves (to sending, sent, partially-failed, back to draft)
are only ever made by the sender, so the store is where they are tried.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from newsletter.cli import cli
from newsletter.errors import IssueStateError, NotFoundError
from newsletter.models import ISSUE_TRANSITIONS as TRANSITIONS
from newsletter.models import DeliveryStatus, IssueKind, IssueState, Recipient
from newsletter.store import Store, audience, ledger
from newsletter.store import issues as issue_store
from newsletter.store.tables import issues
from tests.schedule_helpers import ListSpec, make_home

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
S = IssueState


def issue_in(store: Store, state: IssueState) -> int:
    """A draft put straight into ``state`` (how it got there is not under test)."""
    with store.engine.begin() as conn:
        issue_id = issue_store.create(
            conn,
            list_id="weekly",
            kind=IssueKind.DIGEST,
            subject="Harbour notes",
            preheader="",
            intro_md="Hello.",
            article_ids=[],
            at=NOW,
        )
        conn.execute(update(issues).where(issues.c.id == issue_id).values(state=str(state)))
    return issue_id


def history(store: Store, issue_id: int) -> list[dict[str, object]]:
    with store.engine.connect() as conn:
        return issue_store.events(conn, issue_id)


def state_of(store: Store, issue_id: int) -> IssueState:
    with store.engine.connect() as conn:
        state = issue_store.get(conn, issue_id).state
        assert issue_store.state_of(conn, issue_id) == state  # the sender's cheaper read
        return state


def test_the_state_of_an_unknown_issue_is_an_error(store: Store) -> None:
    with store.engine.connect() as conn, pytest.raises(NotFoundError, match="no issue 404"):
        issue_store.state_of(conn, 404)


def refusal(issue_id: int, current: IssueState, target: IssueState) -> str:
    allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing (final state)"
    return f"issue {issue_id} is {current}; it cannot become {target} (from {current}: {allowed})"


@pytest.mark.parametrize("current", list(IssueState))
def test_the_store_refuses_every_illegal_move(store: Store, current: IssueState) -> None:
    illegal = [t for t in IssueState if t not in TRANSITIONS[current]]
    assert illegal  # no state may become itself
    for target in illegal:
        issue_id = issue_in(store, current)
        before = history(store, issue_id)
        with store.engine.begin() as conn, pytest.raises(IssueStateError) as caught:
            issue_store.transition(conn, issue_id, target, NOW)
        assert str(caught.value) == refusal(issue_id, current, target)
        assert state_of(store, issue_id) == current
        assert history(store, issue_id) == before


@pytest.mark.parametrize("current", list(IssueState))
def test_the_store_allows_every_legal_move(store: Store, current: IssueState) -> None:
    for target in TRANSITIONS[current]:
        issue_id = issue_in(store, current)
        with store.engine.begin() as conn:
            issue_store.transition(conn, issue_id, target, NOW, "test")
        assert state_of(store, issue_id) == target
        assert history(store, issue_id)[-1]["to"] == target


def test_cancelled_is_final() -> None:
    assert TRANSITIONS[S.CANCELLED] == frozenset()


# -- through the command line -------------------------------------------------------------------
COMMANDS = {"queue": S.QUEUED, "cancel": S.CANCELLED, "pause": S.PAUSED}


@pytest.fixture
def cli_store(tmp_path: Path, database_url: str) -> tuple[Path, Store]:
    home = make_home(tmp_path, [ListSpec("weekly")])
    (home / ".env").write_text(f"NEWSLETTER_DATABASE_URL={database_url}\n", encoding="utf-8")
    return home, Store.open(database_url)


def run(home: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--home", str(home), "issue", *args])
    return result.exit_code, result.output


def test_each_command_refuses_every_illegal_move(cli_store: tuple[Path, Store]) -> None:
    home, store = cli_store
    try:
        tried = 0
        for command, target in COMMANDS.items():
            for current in (s for s in IssueState if target not in TRANSITIONS[s]):
                issue_id = issue_in(store, current)
                before = history(store, issue_id)
                code, output = run(home, command, str(issue_id))
                expected = refusal(issue_id, current, target)
                if (command, current) == ("queue", S.QUEUED):  # the editor wants a new time
                    expected = (
                        f"issue {issue_id} is already queued; `newsletter issue reschedule "
                        f"{issue_id} --at TIME` changes its time, `newsletter issue unqueue "
                        f"{issue_id}` makes it a draft again"
                    )
                assert (code, output) == (1, f"Error: {expected}\n"), (
                    f"issue {command} on a {current} issue"
                )
                assert state_of(store, issue_id) == current
                assert history(store, issue_id) == before
                tried += 1
        assert tried == 11
    finally:
        store.close()


def test_resume_takes_paused_issues_only(cli_store: tuple[Path, Store]) -> None:
    """Queued again from sent or partially-failed is the state machine's, for ``retry``."""
    home, store = cli_store
    try:
        for current in (s for s in IssueState if s != S.PAUSED):
            issue_id = issue_in(store, current)
            code, output = run(home, "resume", str(issue_id))
            assert code == 1 and output.startswith(f"Error: issue {issue_id} is {current};")
            assert state_of(store, issue_id) == current
        paused = issue_in(store, S.PAUSED)
        assert run(home, "resume", str(paused)) == (0, f"Issue {paused} queued again.\n")
    finally:
        store.close()


def test_queue_takes_drafts_only(cli_store: tuple[Path, Store]) -> None:
    """paused, sent and partially-failed may become queued, but by resume or retry."""
    home, store = cli_store
    try:
        for current in (S.PAUSED, S.SENT, S.PARTIALLY_FAILED):
            issue_id = issue_in(store, current)
            code, output = run(home, "queue", str(issue_id))
            assert (code, output) == (
                1,
                f"Error: issue {issue_id} is {current}; only a draft "
                "can be queued (resume a paused issue, retry a finished "
                "one)\n",
            )
            assert state_of(store, issue_id) == current
    finally:
        store.close()


def test_retry_refuses_an_issue_that_has_not_finished(cli_store: tuple[Path, Store]) -> None:
    home, store = cli_store
    try:
        for current in (S.QUEUED, S.SENDING, S.PAUSED, S.CANCELLED):
            issue_id = issue_in(store, current)
            audience.freeze_audience(
                store.engine, issue_id, [Recipient("a@example.com")], batch_size=10, at=NOW
            )
            with store.engine.begin() as conn:
                [batch] = ledger.batches_in(conn, issue_id, ledger.BatchState.PENDING)
                ledger.mark_rows(conn, batch, DeliveryStatus.FAILED, at=NOW, error="refused")
            code, output = run(home, "retry", str(issue_id))
            assert (code, output) == (
                1,
                f"Error: issue {issue_id} is {current}; retry once it has finished\n",
            )
            assert state_of(store, issue_id) == current
    finally:
        store.close()


def test_reschedule_and_unqueue_take_queued_issues_only(cli_store: tuple[Path, Store]) -> None:
    """Both act on a queued issue's time; on any other issue they change and record nothing."""
    home, store = cli_store
    try:
        for current in (s for s in IssueState if s != S.QUEUED):
            issue_id = issue_in(store, current)
            before = history(store, issue_id)
            code, output = run(home, "reschedule", str(issue_id), "--now")
            assert code == 1 and output.startswith(
                f"Error: issue {issue_id} is {current}; only a queued issue can be rescheduled"
            )
            assert run(home, "unqueue", str(issue_id)) == (
                1,
                f"Error: issue {issue_id} is {current}; only a queued issue can go back to draft\n",
            )
            assert state_of(store, issue_id) == current
            assert history(store, issue_id) == before
        queued = issue_in(store, S.QUEUED)
        assert run(home, "reschedule", str(queued), "--now")[0] == 0
        assert run(home, "unqueue", str(queued))[0] == 0
        assert state_of(store, queued) == S.DRAFT
        assert [(h["from"], h["to"]) for h in history(store, queued)][-2:] == [
            (S.QUEUED, S.QUEUED),
            (S.QUEUED, S.DRAFT),
        ]
    finally:
        store.close()
