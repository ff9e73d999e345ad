"""What the ledger says and what the provider received, and the promises they must keep.

The promises, after any crash and resume:
- nobody is silently missing: every member ends ``sent``, ``failed`` with a reason,
  ``suppressed`` or ``unknown`` with a reason, never ``queued``;
- a ``sent`` row was received exactly once, and nobody was received twice;
- idempotent providers (resend, brevo, the outbox) leave no ``unknown`` at all;
- an ``unknown`` row was received at most once, and the issue says it is not fully sent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy import select

from newsletter.devtools.fakeprovider import FakeProviderServer
from newsletter.store import Store, tally
from newsletter.store import issues as issue_store
from newsletter.store.tables import batches, recipients

from .publication import Audience

IDEMPOTENT = frozenset({"outbox", "resend", "brevo"})
RECONCILING = frozenset({"mailgun", "postmark"})
UNSURE = frozenset({"sendgrid", "ses"})
FINISHED = frozenset({"sent", "partially-failed"})
SETTLED = frozenset({"sent", "failed", "suppressed", "unknown"})
#: ``issue show`` lists this many problem rows at most.
PROBLEMS_SHOWN = 50


class Mailbox(Protocol):
    def received(self) -> Counter[str]:
        """Copies accepted per recipient address (lower case)."""


@dataclass(frozen=True)
class ServerRecord:
    """The fake provider's record of every copy it accepted (it outlives the senders)."""

    server: FakeProviderServer
    provider: str

    def received(self) -> Counter[str]:
        recorder = self.server.recorder
        addresses = {c.recipient.lower() for c in recorder.copies(self.provider)}
        return Counter({a: recorder.count(self.provider, a) for a in addresses})


@dataclass(frozen=True)
class OutboxFolder:
    """The outbox writes one ``<ledger id>-<address>.eml`` per copy; count those files."""

    folder: Path

    def received(self) -> Counter[str]:
        names = [p.name for p in self.folder.glob("*.eml") if not p.name.startswith(".")]
        return Counter(name.split("-", 1)[1].removesuffix(".eml").lower() for name in names)


@dataclass(frozen=True)
class LedgerRow:
    status: str
    error: str
    batch_state: str


@dataclass(frozen=True)
class Observation:
    state: str
    rows: Mapping[str, LedgerRow]
    received: Counter[str]

    def with_status(self, status: str) -> frozenset[str]:
        return frozenset(e for e, row in self.rows.items() if row.status == status)


def observe(database_url: str, issue_id: int, mailbox: Mailbox) -> Observation:
    store = Store.open(database_url)
    try:
        with store.engine.connect() as conn:
            state = str(issue_store.get(conn, issue_id).state)
            found = conn.execute(
                select(
                    recipients.c.email,
                    tally.recipient_status.label("status"),
                    recipients.c.error,
                    batches.c.state,
                )
                .select_from(tally.recipients_with_batch)
                .where(recipients.c.issue_id == issue_id)
            ).all()
    finally:
        store.close()
    rows = {r.email: LedgerRow(r.status, r.error, r.state or "") for r in found}
    return Observation(state, rows, mailbox.received())


def listing(emails: Iterable[str], limit: int = 8) -> str:
    ordered = sorted(emails)
    more = f" … and {len(ordered) - limit} more" if len(ordered) > limit else ""
    return f"{len(ordered)}: {', '.join(ordered[:limit])}{more}"


# -- after the resume -----------------------------------------------------------------------
def check_settled(seen: Observation, audience: Audience, provider: str) -> None:
    assert seen.state in FINISHED, f"the issue is left {seen.state!r}"
    check_accounted(seen, audience)
    check_received(seen)
    unknown, failed = seen.with_status("unknown"), seen.with_status("failed")
    if provider in IDEMPOTENT:
        assert not unknown, f"{provider} is idempotent, yet unknown outcomes: {listing(unknown)}"
    if provider in UNSURE:
        lone = {e for e in unknown if seen.rows[e].batch_state != "unknown"}
        assert not lone, f"unknown rows outside an unknown batch: {listing(lone)}"
    expected = "partially-failed" if unknown or failed else "sent"
    assert seen.state == expected, (
        f"issue is {seen.state!r} with {len(unknown)} unknown and {len(failed)} failed"
    )


def check_accounted(seen: Observation, audience: Audience) -> None:
    """Every member has a row with a final status; suppressed ones got nothing."""
    assert set(seen.rows) == audience.members, (
        f"ledger lacks {listing(audience.members - set(seen.rows))}; "
        f"has strangers {listing(set(seen.rows) - audience.members)}"
    )
    open_rows = {e for e, row in seen.rows.items() if row.status not in SETTLED}
    assert not open_rows, f"left unsettled: {listing(open_rows)}"
    unexplained = {e for e, row in seen.rows.items()
                   if row.status in ("failed", "unknown") and not row.error}
    assert not unexplained, f"failed or unknown without a reason: {listing(unexplained)}"
    assert seen.with_status("suppressed") == audience.suppressed
    written = {e for e in audience.suppressed if seen.received[e]}
    assert not written, f"suppressed addresses were written to: {listing(written)}"


def check_received(seen: Observation) -> None:
    """``sent`` means received once; nobody twice; nobody outside the ledger."""
    strangers = set(seen.received) - set(seen.rows)
    assert not strangers, f"copies to addresses not in the ledger: {listing(strangers)}"
    twice = {e for e, n in seen.received.items() if n > 1}
    assert not twice, f"received more than once (silent duplicates): {listing(twice)}"
    lost = {e for e in seen.with_status("sent") if seen.received[e] != 1}
    assert not lost, f"ledger says sent, provider never got it (lost): {listing(lost)}"


def check_issue_reports_unknown(shown: Mapping[str, object], seen: Observation) -> None:
    """``issue show --json`` tells the operator about every unknown outcome."""
    unknown = seen.with_status("unknown")
    assert shown["state"] == "partially-failed"
    assert shown["recipients"] == dict(Counter(row.status for row in seen.rows.values()))
    problems = shown["problems"]
    assert isinstance(problems, list)
    listed = {p["email"] for p in problems if p["status"] == "unknown"}
    assert listed and listed <= unknown, f"`issue show` lists {listing(listed)} as unknown"
    owed = len(unknown) + len(seen.with_status("failed"))
    assert len(problems) == min(owed, PROBLEMS_SHOWN)


# -- after ``issue retry --unknown`` and another send ----------------------------------------
def check_retried(before: Observation, after: Observation, audience: Audience) -> None:
    """Everyone has a copy now; a second copy only for those whose outcome was unknown."""
    retried = before.with_status("unknown")
    check_accounted(after, audience)
    assert after.state == "sent", f"after the retry the issue is {after.state!r}"
    assert after.with_status("sent") == audience.deliverable
    missing = {e for e in audience.deliverable if not after.received[e]}
    assert not missing, f"still never received: {listing(missing)}"
    doubled = {e for e in audience.deliverable if after.received[e] > 1}
    assert doubled <= retried, f"duplicates outside the retried ones: {listing(doubled - retried)}"
    assert all(after.received[e] <= 2 for e in retried)
