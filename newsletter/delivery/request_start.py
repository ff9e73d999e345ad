"""The last step before a batch's request, committed in one short transaction.

A batch is claimed (``sending``) and may then wait, for the rate limiter above all. Just
before its request the sender commits that the request starts (``request_started_at``,
with its lease renewed): a sender that dies before that sent nothing, and recovery puts
the batch back to ``pending`` instead of holding it as an unknown outcome. One write per
batch, none per recipient.

The same transaction fails the recipients whose copy cannot be built (a control character
in a value that reaches a header: ``screening``), each for its reason, and drops the
batch's recipients suppressed since the audience was
frozen (a one-click unsubscribe while a large send is under way): they end ``suppressed``
with the reason, and the provider never sees them. The suppressions added during a send
are few; each sender process reads them through the index on ``created_at``, from where its
last read ended, and only a batch holding one of those addresses costs a look-up more.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from sqlalchemy import Connection

from ..store import Store, ledger, suppressions
from ..store import issues as issue_store
from .base import OutgoingBatch, PreparedIssue
from .screening import unsendable

log = logging.getLogger(__name__)

#: Each read goes back this far before the previous one: a suppression is stamped with its
#: writer's clock before it commits, so one committed late (or by a host whose clock lags a
#: little) may carry a time before the last read.
OVERLAP = timedelta(seconds=60)
#: Where the reads start for an issue that has no start time recorded: every suppression.
_EVER = datetime(1970, 1, 1, tzinfo=UTC)


class LeaseLost(Exception):
    """Another worker took this batch over (our lease ran out); its outcome is theirs to record."""


class SuppressionWatch:
    """The suppressions added since one issue's send began, by address; thread-safe."""

    def __init__(self, since: datetime) -> None:
        self._read_from = since - OVERLAP
        self._found: dict[str, suppressions.Added] = {}
        self._seen: Mapping[str, suppressions.Added] = MappingProxyType({})
        self._lock = threading.Lock()

    def refresh(self, conn: Connection, now: datetime) -> Mapping[str, suppressions.Added]:
        """Read what was added since the last read (``now``: the store's time before it);
        every suppression seen so far, by address."""
        with self._lock:
            since = self._read_from
        added = suppressions.added_since(conn, since)
        with self._lock:
            fresh = [a for a in added if a.email not in self._found]
            for suppression in fresh:
                self._found[suppression.email] = suppression
            if fresh:  # a copy, so senders can read it while another thread adds to it
                self._seen = MappingProxyType(dict(self._found))
            self._read_from = max(self._read_from, now - OVERLAP)
            return self._seen


class RequestStart:
    """``begin`` commits a batch's request as started; shared by an engine's threads."""

    def __init__(
        self, store: Store, owner: str, lease_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._watches: dict[int, SuppressionWatch] = {}
        self._lock = threading.Lock()

    def begin(
        self, prepared: PreparedIssue, claimed: ledger.ClaimedBatch, batch: OutgoingBatch
    ) -> OutgoingBatch:
        """The batch to send now, less its recipients suppressed since the freeze (recorded
        ``suppressed``) and those whose copy cannot be built (recorded ``failed`` with the
        reason); ``LeaseLost`` when another worker has taken the batch over."""
        watch = self._watch(prepared.issue_id)
        # Copies that cannot be built fail here, for their own reason, whatever then happens
        # to the request that carries the rest of the batch.
        refused = unsendable(prepared, batch.recipients)
        at = self.store.now()
        with self.store.engine.begin() as conn:
            # Read before the first write: SQLite's one writer is not kept waiting for it.
            seen = watch.refresh(conn, at)
            if not ledger.start_request(conn, claimed.id, self.owner, now=self.clock(),
                                        lease_seconds=self.lease_seconds, at=at):
                raise LeaseLost(claimed.id)
            # Suppressions key on the lower-cased address; a copy goes to it as written.
            why = {r.recipient_id: _reason(seen[r.email.lower()])
                   for r in batch.recipients if r.email.lower() in seen} if seen else {}
            dropped = ledger.suppress_open(conn, why, prepared.list_id, at=at) if why else []
            # A reader who left meanwhile stays ``suppressed``, the more useful word.
            ledger.mark_each(conn, ledger.failures(
                {rid: why for rid, why in refused.items() if rid not in dropped}), at)
        if dropped:
            log.info("batch %s: %s recipient(s) suppressed since the send began, not sent",
                     claimed.seq, len(dropped))
        if not dropped and not refused:
            return batch
        gone = set(dropped) | set(refused)
        return replace(batch, recipients=[r for r in batch.recipients
                                          if r.recipient_id not in gone])

    def _watch(self, issue_id: int) -> SuppressionWatch:
        with self._lock:
            watch = self._watches.get(issue_id)
        if watch is not None:
            return watch
        with self.store.engine.connect() as conn:
            started = issue_store.get(conn, issue_id).started_at
        with self._lock:
            return self._watches.setdefault(issue_id, SuppressionWatch(started or _EVER))


def _reason(suppression: suppressions.Added) -> str:
    by = f" ({suppression.source})" if suppression.source else ""
    return f"{suppression.reason}{by} after the send began"
