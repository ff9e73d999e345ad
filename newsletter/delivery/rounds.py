"""Sending several due issues in one run, without one issue's retry holding up the others.

The engine hands an issue back (``SendReport.retry_at``) when every batch it has left waits
for a retry further off than its ``hand_back_after``. ``DueRounds`` then sends the other
issues, sleeps only until the soonest retry is due, and takes the waiting issues up again;
each issue's reports from the several rounds are added up into one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from .report import Progress, SendReport

#: A run goes on with other issues while one waits longer than this for a retry.
HAND_BACK_SECONDS = 5.0


class DueRounds:
    """The issues of one ``send`` run: their summed reports and the ones set aside."""

    def __init__(
        self,
        progress_for: Callable[[int], Progress | None] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._progress_for = progress_for
        self._progress: dict[int, Progress | None] = {}
        self._reports: dict[int, SendReport] = {}
        self._waiting: dict[int, float] = {}  # issue → the epoch second its retry is due
        self._clock = clock
        self._sleep = sleep

    def progress(self, issue_id: int) -> Progress | None:
        """One progress display per issue, however many rounds it takes."""
        if issue_id not in self._progress:
            self._progress[issue_id] = self._progress_for(issue_id) if self._progress_for else None
        return self._progress[issue_id]

    def record(self, report: SendReport) -> None:
        earlier = self._reports.get(report.issue_id)
        self._reports[report.issue_id] = report if earlier is None else _added(earlier, report)
        if report.retry_at is not None:
            self._waiting[report.issue_id] = report.retry_at

    def next_round(self) -> list[int]:
        """Sleep until the soonest set-aside issue may go on; those issues, or [] when none wait."""
        if not self._waiting:
            return []
        self._sleep(max(0.0, min(self._waiting.values()) - self._clock()))
        now = self._clock()
        # In the order their retries came due: a sleep that overshoots (a loaded machine)
        # must not let an issue whose retry is later go before one that was due first.
        due = sorted((i for i, at in self._waiting.items() if at <= now),
                     key=lambda i: (self._waiting[i], i))
        for issue_id in due:
            del self._waiting[issue_id]
        return due

    def reports(self) -> list[SendReport]:
        return list(self._reports.values())


def _added(earlier: SendReport, later: SendReport) -> SendReport:
    """Two runs of one issue as one: counts added up, the state as the later run left it."""
    return replace(
        later,
        batches_sent=earlier.batches_sent + later.batches_sent,
        recipients_sent=earlier.recipients_sent + later.recipients_sent,
        recipients_failed=earlier.recipients_failed + later.recipients_failed,
        unknown_batches=earlier.unknown_batches + later.unknown_batches,
        retries=earlier.retries + later.retries,
    )
