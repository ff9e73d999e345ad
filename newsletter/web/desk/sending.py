"""Sending an issue from its page: a test to the test recipients or typed addresses, queueing
now or at a date and time in the list's timezone, a queued issue's new time, and retrying
the failed or the unknown recipients of a finished one. Each form calls what the command
line calls (``editor.editing``, ``editor.proofs``, ``Publisher``).
"""

from __future__ import annotations

from starlette.datastructures import FormData

from ...editor import editing, proofs
from ...editor.overview import list_timezone
from ...errors import ConfigError, IssueStateError
from ...issues import sendtime
from ...publisher import Publisher
from ...store import issues as issue_store
from ...wording import counted
from .issuepage import FieldError, IssueForms, Operation, text_field, ticked

#: How sendtime's sentences name the date and time inputs.
SEND_TIME = "Send time"
SEND_TO = "Send to"


def send_test(publisher: Publisher, issue_id: int, form: FormData) -> str:
    try:
        addresses = proofs.proof_addresses(publisher, text_field(form, "addresses"),
                                           field=SEND_TO)
    except ConfigError as exc:
        raise FieldError("addresses", str(exc)) from exc
    sent = proofs.send_proof(publisher, issue_id, addresses)
    return (f"Test sent through {publisher.settings.provider}, marked [TEST], to "
            f"{', '.join(sent.addresses)}. The provider said: {'; '.join(sent.results)}.")


def local_time(form: FormData) -> str:
    """The date and time inputs as one local time ('2026-12-01 08:00'); "" for neither."""
    date, time = text_field(form, "date").strip(), text_field(form, "time").strip()
    if bool(date) != bool(time):
        missing = "a time" if date else "a date"
        raise FieldError("when", f"{SEND_TIME}: give {missing} too, or neither to send at "
                                 "the next send")
    return f"{date} {time}" if date else ""


def queue(publisher: Publisher, issue_id: int, form: FormData) -> str:
    report, when = editing.queue_local(publisher, issue_id, local_time(form),
                                       force=ticked(form, "force"), field=SEND_TIME)
    told = [f"Queued for {_described(publisher, issue_id, when)}."] if when else []
    if when and when.note:
        told.append(f"{when.note}.")
    if report.warnings:
        count = len(report.warnings)
        told.append(f"Queued despite {counted(count, 'warning')}.")
    return " ".join(told)


def reschedule(publisher: Publisher, issue_id: int, form: FormData) -> str:
    when = editing.reschedule_local(publisher, issue_id, local_time(form), field=SEND_TIME)
    if when is None:
        return "It goes out at the next send."
    note = f" {when.note}." if when.note else ""
    return f"Send time changed to {_described(publisher, issue_id, when)}.{note}"


def _described(publisher: Publisher, issue_id: int, when: sendtime.SendTime) -> str:
    with publisher.store.engine.connect() as conn:
        list_id = issue_store.get(conn, issue_id).list_id
    return sendtime.describe(when.at, list_timezone(publisher, list_id))


def retry_failed(publisher: Publisher, issue_id: int, form: FormData) -> str:
    return _retried(publisher.retry(issue_id), "failed")


def retry_unknown(publisher: Publisher, issue_id: int, form: FormData) -> str:
    if not ticked(form, "confirm"):
        raise FieldError("confirm", "Tick the box to say you accept that some of these "
                                    "readers may get the issue twice")
    return _retried(publisher.retry(issue_id, unknown=True), "unknown")


def _retried(count: int, status: str) -> str:
    if not count:  # another editor retried them a moment ago
        raise IssueStateError(f"No {status} recipients are left to retry.")
    who = "recipient" if count == 1 else "recipients"
    return f"Queued again for {count} {status} {who}, at the next send."


OPERATIONS = [
    Operation("test", send_test),
    Operation("queue", queue, field="when"),
    Operation("reschedule", reschedule, field="when"),
    Operation("retry", retry_failed),
    Operation("retry-unknown", retry_unknown),
]


class SendingEndpoints(IssueForms):
    operations = OPERATIONS
