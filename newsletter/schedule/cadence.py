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
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import NewsletterError
from ..models import Approval, Cadence, MailingList

if TYPE_CHECKING:
    from ..publisher import Publisher
    from ..sources.collect import CollectReport

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HeldDraft:
    """A draft of an ``auto`` list that could not be queued: a template or pre-send error."""

    list_id: str
    issue_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class ListOutcome:
    """What one scheduled run did for one list."""

    list_id: str
    drafted: tuple[int, ...] = ()
    queued: tuple[int, ...] = ()
    waiting: tuple[int, ...] = ()  # drafts of an ``editor`` list, left for an editor
    held: tuple[HeldDraft, ...] = ()  # drafts an error kept back

    @property
    def skipped(self) -> bool:
        return not self.drafted


def publish_new(publisher: Publisher, list_id: str) -> ListOutcome:
    """Draft the list's new articles per its cadence, then queue them if it is ``auto``."""
    mailing_list = publisher.config.list(list_id)
    drafted = tuple(publisher.draft(list_id))
    if not drafted:
        log.info("list %s: no new articles; nothing drafted, nothing sent", list_id)
        return ListOutcome(list_id)
    if mailing_list.approval == Approval.EDITOR:
        for issue_id in drafted:
            log.info(
                "list %s: issue %s drafted and waiting for an editor (approval = editor)",
                list_id,
                issue_id,
            )
        return ListOutcome(list_id, drafted, waiting=drafted)
    queued: list[int] = []
    held: list[HeldDraft] = []
    for issue_id in drafted:
        problem = _queue(publisher, mailing_list, issue_id)
        if problem is None:
            queued.append(issue_id)
        else:
            held.append(HeldDraft(list_id, issue_id, problem))
    return ListOutcome(list_id, drafted, tuple(queued), held=tuple(held))


def _queue(publisher: Publisher, mailing_list: MailingList, issue_id: int) -> str | None:
    """Queue one draft of an ``auto`` list; what kept it a draft, or None once queued."""
    try:
        report = publisher.queue(issue_id, force=True)
    except NewsletterError as exc:  # failed checks, a broken template: this draft only
        log.error("list %s: issue %s left as a draft: %s", mailing_list.id, issue_id, exc)
        return str(exc)
    for warning in report.warnings:
        log.warning(
            "list %s: issue %s queued with a warning: %s", mailing_list.id, issue_id, warning
        )
    log.info("list %s: issue %s queued", mailing_list.id, issue_id)
    return None


def instant_lists(publisher: Publisher) -> list[MailingList]:
    return [m for m in publisher.config.lists.values() if m.cadence == Cadence.INSTANT]


def after_collection(publisher: Publisher) -> list[ListOutcome]:
    """Turn each new article into an issue for every ``instant`` list."""
    return [publish_new(publisher, m.id) for m in instant_lists(publisher)]


@dataclass(frozen=True, slots=True)
class Collection:
    """What a collection found, and what each ``instant`` list made of it."""

    report: CollectReport
    lists: list[ListOutcome]


def collect_and_publish(publisher: Publisher) -> Collection:
    """What the scheduler's collection does, for whoever asks for one (the desk, the API):
    collect, then draft (and queue, for an ``auto`` list) an issue of each new article for
    every ``instant`` list. The drafts claim their articles, so a scheduler drafting at the
    same moment cannot draft one twice (``issue_store.create``)."""
    return Collection(publisher.collect(), after_collection(publisher))


def run_digest(publisher: Publisher, list_id: str) -> ListOutcome:
    """The digest that falls due on a list's schedule; skipped when there is nothing new."""
    mailing_list = publisher.config.list(list_id)
    if mailing_list.cadence != Cadence.DIGEST:
        log.warning("list %s is no longer a digest list; its digest job does nothing", list_id)
        return ListOutcome(list_id)
    return publish_new(publisher, list_id)
