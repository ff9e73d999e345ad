"""What the scheduler does for each kind of list, in terms of ``Publisher`` calls.

* ``instant`` lists: after every collection, each new article becomes an issue of its own.
* ``digest`` lists: on the list's schedule, the articles since the last digest become one
  issue; with none, nothing is drafted and nothing is sent.

Then the list's approval decides: ``auto`` queues the draft without a person, ``editor``
leaves it for an editor. Automatic queueing runs the same pre-send checks as ``issue
queue``: errors leave the issue a draft (and are logged); warnings are logged but do not
hold it back, because on an ``auto`` list nobody would be there to say ``--force``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import NewsletterError
from ..models import Approval, Cadence, MailingList

if TYPE_CHECKING:
    from ..publisher import Publisher

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ListOutcome:
    """What one scheduled run did for one list."""

    list_id: str
    drafted: tuple[int, ...] = ()
    queued: tuple[int, ...] = ()
    held: tuple[int, ...] = ()  # drafts left for an editor or a fix

    @property
    def skipped(self) -> bool:
        return not self.drafted


def publish_new(publisher: Publisher, list_id: str) -> ListOutcome:
    """Draft the list's new articles per its cadence, then queue them if it is ``auto``."""
    mailing_list = publisher.config.list(list_id)
    drafted = publisher.draft(list_id)
    if not drafted:
        log.info("list %s: no new articles; nothing drafted, nothing sent", list_id)
        return ListOutcome(list_id)
    queued = approve(publisher, mailing_list, drafted)
    held = tuple(i for i in drafted if i not in queued)
    return ListOutcome(list_id, tuple(drafted), queued, held)


def approve(
    publisher: Publisher, mailing_list: MailingList, issue_ids: Sequence[int]
) -> tuple[int, ...]:
    """Queue what an ``auto`` list drafted; an ``editor`` list keeps its drafts."""
    if mailing_list.approval == Approval.EDITOR:
        for issue_id in issue_ids:
            log.info(
                "list %s: issue %s drafted and waiting for an editor (approval = editor)",
                mailing_list.id,
                issue_id,
            )
        return ()
    return tuple(i for i in issue_ids if _queue(publisher, mailing_list, i))


def _queue(publisher: Publisher, mailing_list: MailingList, issue_id: int) -> bool:
    try:
        report = publisher.queue(issue_id, force=True)
    except NewsletterError as exc:  # failed checks, a broken template: this draft only
        log.error("list %s: issue %s left as a draft: %s", mailing_list.id, issue_id, exc)
        return False
    for warning in report.warnings:
        log.warning(
            "list %s: issue %s queued with a warning: %s", mailing_list.id, issue_id, warning
        )
    log.info("list %s: issue %s queued", mailing_list.id, issue_id)
    return True


def instant_lists(publisher: Publisher) -> list[MailingList]:
    return [m for m in publisher.config.lists.values() if m.cadence == Cadence.INSTANT]


def after_collection(publisher: Publisher) -> list[ListOutcome]:
    """Turn each new article into an issue for every ``instant`` list."""
    return [publish_new(publisher, m.id) for m in instant_lists(publisher)]


def run_digest(publisher: Publisher, list_id: str) -> ListOutcome:
    """The digest that falls due on a list's schedule; skipped when there is nothing new."""
    mailing_list = publisher.config.list(list_id)
    if mailing_list.cadence != Cadence.DIGEST:
        log.warning("list %s is no longer a digest list; its digest job does nothing", list_id)
        return ListOutcome(list_id)
    return publish_new(publisher, list_id)
