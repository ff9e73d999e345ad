"""``newsletter run --once``: one cycle of what the daemon does, for cron.

Collect every source; draft (and, on an ``auto`` list, queue) each new article of the
``instant`` lists, and the digest of each ``digest`` list whose cron time has come
(``due``: the daemon's rule and record, misfire grace included); then send what is due.

What needs a person is summed up as flags, which are also the exit status, so that cron
mail or a monitoring script notices: a source that could not be collected, a draft held
back by a template or pre-send error, an issue that ended paused or partially failed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntFlag
from typing import TYPE_CHECKING

from ..delivery.report import Progress, SendReport
from ..models import Cadence, IssueState
from ..store import make_engine
from .cadence import HeldDraft, publish_new
from .due import DigestDue, digests_due
from .scheduler import JobSpec, job_specs

if TYPE_CHECKING:
    from ..publisher import Publisher
    from ..sources.collect import CollectReport, SourceReport


class Attention(IntFlag):
    """What a cycle leaves for a person; the exit status of ``run --once`` is their sum."""

    SOURCES_FAILED = 4
    HELD_BACK = 8
    PAUSED = 16
    PARTIALLY_FAILED = 32

    @property
    def label(self) -> str:
        return (self.name or "").lower().replace("_", "-")


#: ``run --once`` found another scheduler holding the lock and did nothing (sysexits'
#: EX_TEMPFAIL: try again later). Not a sum of the flags above.
LOCK_HELD_EXIT = 75


@dataclass
class CycleReport:
    """What one ``run --once`` did."""

    collected: CollectReport | None = None
    digests: list[DigestDue] = field(default_factory=list)
    drafted: list[int] = field(default_factory=list)
    queued: list[int] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)  # drafts left for an editor
    held: list[HeldDraft] = field(default_factory=list)
    sent: list[SendReport] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def failed_sources(self) -> tuple[SourceReport, ...]:
        return self.collected.errors if self.collected is not None else ()

    @property
    def attention(self) -> Attention:
        found = Attention(0)
        if self.failed_sources:
            found |= Attention.SOURCES_FAILED
        if self.held:
            found |= Attention.HELD_BACK
        states = {r.final_state for r in self.sent}
        if IssueState.PAUSED in states:
            found |= Attention.PAUSED
        if IssueState.PARTIALLY_FAILED in states:
            found |= Attention.PARTIALLY_FAILED
        return found

    @property
    def exit_code(self) -> int:
        return int(self.attention)

    @property
    def problems(self) -> list[str]:
        return [flag.label for flag in Attention if flag in self.attention]


def run_cycle(
    publisher: Publisher, progress_for: Callable[[int], Progress | None] | None = None
) -> CycleReport:
    """Collect, draft and queue per each list's cadence and approval, then send what is due."""
    specs = job_specs(publisher.settings, publisher.config)  # a bad schedule: nothing done
    report = CycleReport(collected=publisher.collect())
    report.digests = _digests(publisher, specs)
    due = {d.list_id: d for d in report.digests}
    for mailing_list in publisher.config.lists.values():
        digest = due.get(mailing_list.id)
        if mailing_list.cadence == Cadence.DIGEST and digest is not None and not digest.due:
            report.skipped.append(f"{mailing_list.id}: {digest.note}")
            continue
        outcome = publish_new(publisher, mailing_list.id)
        report.drafted += outcome.drafted
        report.queued += outcome.queued
        report.waiting += outcome.waiting
        report.held += outcome.held
        if outcome.skipped:
            report.skipped.append(f"{mailing_list.id}: no new articles")
        for issue_id in outcome.waiting:
            report.skipped.append(
                f"{mailing_list.id}: draft {issue_id} waits for an editor (approval = editor)"
            )
        for held in outcome.held:
            report.skipped.append(
                f"{mailing_list.id}: draft {held.issue_id} was held back: {held.reason} "
                f"(`newsletter issue check {held.issue_id}`)"
            )
    report.sent = publisher.send_due(progress_for)
    return report


def _digests(publisher: Publisher, specs: Sequence[JobSpec]) -> list[DigestDue]:
    settings = publisher.settings
    engine = make_engine(settings.database_url)  # the job store's own, as in the daemon
    try:
        return digests_due(settings, engine, specs, publisher.store.now())
    finally:
        engine.dispose()


def summary(report: CycleReport, sent: list[dict[str, object]]) -> dict[str, object]:
    """``run --once --json``: every count a script needs, and the exit status it explains."""
    return {
        "collected": report.collected.as_dict() if report.collected else None,
        "failed_sources": [
            {"source": s.source_id, "error": s.error} for s in report.failed_sources
        ],
        "digests": [d.as_dict() for d in report.digests],
        "drafted": report.drafted,
        "queued": report.queued,
        "waiting_for_editor": report.waiting,
        "held_back": [
            {"list": h.list_id, "issue": h.issue_id, "reason": h.reason} for h in report.held
        ],
        "sent": sent,
        "issues": [{"issue": r.issue_id, "state": r.final_state} for r in report.sent],
        "skipped": report.skipped,
        "problems": report.problems,
        "exit_code": report.exit_code,
    }
