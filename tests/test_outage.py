"""A provider that is down for longer than the retries last: the issue is paused with the
reason, nobody is failed, and a resume delivers every recipient exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.delivery import backoff
from newsletter.devtools.fakeprovider import Fault, FaultKind
from newsletter.models import IssueState
from newsletter.store import issues as issue_store
from newsletter.store import tally
from tests.test_workers import mailgun_publisher, queued


def test_an_outage_pauses_the_send_and_a_resume_delivers_everyone_once(
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
            assert record.state == IssueState.PAUSED
            assert "HTTP 500" in record.pause_reason
            waiting = tally.status_counts(conn, issue_id)
        assert set(waiting) == {"queued"}  # nobody failed for the provider's outage

        publisher.resume(issue_id)
        again = publisher.send_issue(issue_id)
        summary = server.recorder.summary()
    assert again.final_state == "sent" and again.paused == ""
    assert summary["accepted"]["mailgun"] == waiting["queued"] > 2
    assert summary["recipients_with_duplicates"] == {"mailgun": 0}
