"""A provider that is down for longer than the retries last: the issue is paused with the
reason and nobody is failed; after ``NEWSLETTER_OUTAGE_RESUME_MINUTES`` the next send
resumes it and every recipient gets exactly one copy."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.cli.send import describe
from newsletter.config import load_settings
from newsletter.delivery import backoff
from newsletter.delivery.outage import resume_after_outage
from newsletter.delivery.report import SendReport
from newsletter.devtools.fakeprovider import Fault, FaultKind
from newsletter.models import IssueKind, IssueState
from newsletter.store import Store, tally
from newsletter.store import issues as issue_store
from tests.test_workers import mailgun_publisher, queued


def test_an_outage_pauses_the_send_and_a_later_send_resumes_it(
    home: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backoff, "BASE_SECONDS", 0.02)  # waits of tens of milliseconds
    with mailgun_publisher(home, database_url, max_attempts=3, batch_size=2,
                           concurrency=2, processes=1) as (server, publisher):
        (issue_id,) = queued(publisher, *publisher.draft("weekly"))
        server.faults.push("mailgun", Fault(FaultKind.SERVER_ERROR, times=3))
        report = publisher.send_issue(issue_id)
        assert "provider unavailable, 3 attempts in a row failed" in report.paused
        assert server.recorder.requests["mailgun"] == 3  # one probe at a time
        assert sum(server.recorder.counts.values()) == 0
        with publisher.store.engine.connect() as conn:
            record = issue_store.get(conn, issue_id)
            assert record.state == IssueState.PAUSED and "HTTP 500" in record.pause_reason
            waiting = tally.status_counts(conn, issue_id)
        assert set(waiting) == {"queued"}  # nobody failed for the provider's outage

        paused_at = publisher.store.now()
        publisher.store.clock = lambda: paused_at + timedelta(minutes=14)
        assert publisher.send_due() == []  # not yet
        publisher.store.clock = lambda: paused_at + timedelta(minutes=15, seconds=1)
        (again,) = publisher.send_due()
        summary = server.recorder.summary()
    assert again.issue_id == issue_id and again.final_state == "sent"
    assert summary["accepted"]["mailgun"] == waiting["queued"] > 2
    assert summary["recipients_with_duplicates"] == {"mailgun": 0}


def paused_issue(store: Store, reason: str) -> int:
    with store.engine.begin() as conn:
        issue_id = issue_store.create(conn, list_id="weekly", kind=IssueKind.DIGEST,
                                      subject="S", preheader="", intro_md="", article_ids=[],
                                      at=store.now())
        issue_store.transition(conn, issue_id, IssueState.QUEUED, store.now())
        issue_store.transition(conn, issue_id, IssueState.PAUSED, store.now(), reason,
                               pause_reason=reason)
    return issue_id


def test_only_an_outage_pause_is_resumed_and_only_when_asked(store: Store) -> None:
    outage = paused_issue(store, "provider unavailable, 8 attempts in a row failed: HTTP 502")
    by_editor = paused_issue(store, "paused by an editor")
    later = store.now() + timedelta(minutes=30)
    store.clock = lambda: later
    assert resume_after_outage(store, 0) == []  # 0: a person decides
    assert resume_after_outage(store, 31) == []  # not long enough
    assert resume_after_outage(store, 30) == [outage]
    assert resume_after_outage(store, 30) == []  # once
    with store.engine.connect() as conn:
        assert issue_store.get(conn, outage).state == IssueState.QUEUED
        assert issue_store.get(conn, outage).pause_reason == ""
        assert issue_store.get(conn, by_editor).state == IssueState.PAUSED


def test_issue_show_says_when_an_outage_pause_ends(home: Path) -> None:
    settings = load_settings(home, environ={})
    store = Store.open(settings.database_url)
    issue_id = paused_issue(store, "provider unavailable, 8 attempts in a row failed: HTTP 503")
    with store.engine.connect() as conn:
        paused_at = issue_store.get(conn, issue_id).updated_at
    store.close()
    shown = CliRunner().invoke(cli, ["--home", str(home), "issue", "show", str(issue_id)])
    data = json.loads(CliRunner().invoke(
        cli, ["--home", str(home), "issue", "show", str(issue_id), "--json"]).output)
    assert data["resumes_at"] == str(paused_at + timedelta(minutes=15))  # as send_at is shown
    assert f"Resumes:  {paused_at + timedelta(minutes=15):%Y-%m-%d %H:%M}" in shown.output


def test_the_send_summary_says_how_an_outage_pause_ends() -> None:
    report = SendReport(7, paused="provider unavailable, 8 attempts in a row failed: HTTP 502")
    report.final_state, report.counts = "paused", {"queued": 10}
    assert describe(report, 15).splitlines()[1:] == [
        "  paused: provider unavailable, 8 attempts in a row failed: HTTP 502",
        "  the first send 15 minutes from now resumes it, or "
        "`newsletter issue resume 7` once the provider answers",
    ]
    alone = describe(report, 0).splitlines()[-1]
    assert alone == "  `newsletter issue resume 7` once the provider answers"
    by_editor = SendReport(7, paused="credentials refused")
    assert len(describe(by_editor, 15).splitlines()) == 2
