"""Keeping the readers' tables small: what the outbox sender deletes now and then.

- ``mail_outbox``: a message sent, failed or of unknown fate is kept
  ``NEWSLETTER_READER_MAIL_RETENTION_DAYS`` after it was last tried (``subscribers export``
  shows it meanwhile), then deleted: it was one confirmation, welcome or reminder;
- ``signup_requests``: a request never confirmed whose link has expired
  (``NEWSLETTER_SIGNUP_CONFIRM_HOURS`` after it was last made) confirms nothing any more;
- ``reader_limits``: a counter whose window has ended counts nothing.

Each is deleted a batch at a time, a transaction each, and at most ``MAX_BATCHES`` batches a
pass, so a pass never holds the database for long; what is left goes at the next pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection

from ..config import Settings
from ..store import Store, reader_limits, signup_requests
from ..store import outbox as outbox_store

#: Rows deleted per transaction.
BATCH = 500
#: Transactions per table and pass.
MAX_BATCHES = 20

#: Deletes up to a batch of rows in the transaction it is given; how many.
Pruning = Callable[[Connection], int]


@dataclass(frozen=True, slots=True)
class Tidied:
    """How many rows one pass deleted."""

    messages: int
    requests: int
    counters: int


def tidy(
    settings: Settings, store: Store, *, batch: int = BATCH, batches: int = MAX_BATCHES
) -> Tidied:
    """Delete what the readers' tables need not keep, as of ``store.now()``."""
    now = store.now()
    kept_until = now - timedelta(days=settings.reader_mail_retention_days)
    expired = now - timedelta(hours=settings.signup_confirm_hours)
    window = now - timedelta(minutes=settings.signup_window_minutes)
    return Tidied(
        messages=_batched(store, batches, lambda conn: outbox_store.prune(
            conn, before=kept_until, limit=batch), batch),
        requests=_batched(store, batches, lambda conn: signup_requests.prune_expired(
            conn, before=expired, limit=batch), batch),
        counters=_batched(store, 1, lambda conn: reader_limits.prune(conn, before=window), 0),
    )


def _batched(store: Store, batches: int, prune: Pruning, batch: int) -> int:
    """Run ``prune`` until it deletes less than a whole ``batch``, at most ``batches`` times."""
    done = 0
    for _ in range(batches):
        with store.engine.begin() as conn:
            deleted = prune(conn)
        done += deleted
        if deleted < batch or not batch:
            break
    return done

