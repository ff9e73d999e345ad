"""Sending the one-off messages to readers (``mail_outbox``) as soon as they are queued.

A sender is a thread in each process that queues messages (the web app, started with it)
and in the scheduler daemon. Whoever queues a message wakes the sender of its own process
(``wake``); every sender also looks for due messages every ``POLL_SECONDS``, so a message
queued by another process, or one whose retry falls due, is not left waiting.

A message is claimed with a lease (``store.outbox.claim``) and sent through the configured
provider, as an issue's copy is (``delivery.oneoff``), then recorded: ``sent`` with the
provider's message id, ``failed``, or ``unknown`` when the provider may have sent it but
did not say. A transient error is retried with the send loop's backoff, up to
``NEWSLETTER_MAX_ATTEMPTS``. The outcomes of the messages claimed together are recorded in
one transaction (a busy form queues hundreds a second, and every write waits its turn). A
sender killed mid-send leaves its rows claimed; once the lease ends, any sender takes them
again.

A message is checked against the suppressions once more just before it goes: one may have
been added since it was queued (a bounce from an issue, a complaint, an admin, a reader
forgotten). A confirmation still goes to a reader whose only suppressions are their own
choice to leave (confirming is how they come back); a welcome or a reminder goes only to a
reader with none. A message that may not go is recorded ``failed``, its error saying which
suppression stopped it. Now and then (``PRUNE_SECONDS``) the sender also deletes what the
readers' tables need not keep (``readers.housekeeping``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import Connection

from ..config import Settings
from ..delivery.backoff import delay
from ..delivery.base import Provider
from ..delivery.oneoff import one_off
from ..delivery.prepare import public_base
from ..delivery.providers.registry import make_provider
from ..errors import (
    ConfigError,
    MessageError,
    NewsletterError,
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    UnknownOutcomeError,
)
from ..lists.config import PublicationConfig, PublicationFile
from ..models import ALL_LISTS, BatchState, DeliveryStatus
from ..store import Store
from ..store import outbox as outbox_store
from ..store.outbox import OutboxMessage
from ..store.suppressions import FORGOTTEN, Suppression
from ..tokens import TokenSigner, unsubscribe_url
from .housekeeping import tidy
from .mail import MailKind
from .standing import Standing, relevant, standing_of

log = logging.getLogger(__name__)

#: Records what happened to one message, in the transaction it is given.
Recording = Callable[[Connection], None]

#: How often a sender looks for messages it was not woken for.
POLL_SECONDS = 5.0
#: Messages claimed at once.
CLAIM = 20
#: A provider that refuses the credentials is asked again this much later at the soonest.
AUTH_RETRY_SECONDS = 60.0
#: How often the readers' tables are tidied (``readers.housekeeping``).
PRUNE_SECONDS = 600.0
#: The one kind of message a reader who chose to leave may still be sent.
CONFIRMING = str(MailKind.CONFIRM)


class OutboxSender:
    """Sends due messages: ``send_due`` once, or ``start`` a thread that keeps doing it."""

    def __init__(
        self, settings: Settings, store: Store, *, provider: Provider | None = None,
        config: Callable[[], PublicationConfig] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self._provider = provider
        # An admin's unfinished edit of the file must not fail a reader's confirmation.
        self._config = config or PublicationFile(settings).last_good
        self._signer = TokenSigner(settings.secret_key.reveal())
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pruned_at: datetime | None = None

    @property
    def provider(self) -> Provider:
        if self._provider is None:
            self._provider = make_provider(self.settings)
        return self._provider

    # -- the thread ------------------------------------------------------------------------
    def wake(self) -> None:
        """A message was queued: send it now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="reader-outbox", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the message in hand and stop; what is left waits for the next sender."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._provider is not None:
            self._provider.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.send_due()
                self._prune()
                wait = self._until_next()
            except Exception:  # a database outage must not end the thread: try again later
                log.exception("reader outbox: sending failed; trying again shortly")
                wait = POLL_SECONDS
            self._wake.wait(wait)

    def _until_next(self) -> float:
        with self.store.engine.connect() as conn:
            due = outbox_store.next_due(conn)
        if due is None:
            return POLL_SECONDS
        return min(POLL_SECONDS, max(0.0, (due - self.store.now()).total_seconds()))

    def _prune(self) -> None:
        now = self.store.now()
        if self._pruned_at is not None and (now - self._pruned_at).total_seconds() < PRUNE_SECONDS:
            return
        tidied = tidy(self.settings, self.store)
        if tidied.messages or tidied.requests:
            log.info("reader outbox: deleted %d old messages and %d expired sign-up requests",
                     tidied.messages, tidied.requests)
        self._pruned_at = now

    # -- one pass --------------------------------------------------------------------------
    def send_due(self) -> int:
        """Claim and send every message due now; how many were tried."""
        tried = 0
        self.provider  # noqa: B018 - set up first: a provider without credentials claims nothing
        while not self._stop.is_set():
            claimed = self._claim()
            if not claimed:
                break
            stopped = self._suppressed(claimed)
            outcomes = [
                self._final(message, BatchState.FAILED, stopped[message.id])
                if message.id in stopped else self._send(message)
                for message in claimed
            ]
            with self.store.writing() as conn:  # one write for the lot, not one each
                for record in outcomes:
                    record(conn)
            tried += len(claimed)
        return tried

    def _claim(self) -> list[OutboxMessage]:
        now = self.store.now()
        lease = now + timedelta(seconds=self.settings.lease_seconds)
        with self.store.writing() as conn:
            return outbox_store.claim(conn, now=now, lease_until=lease, limit=CLAIM)

    def _suppressed(self, messages: list[OutboxMessage]) -> dict[int, str]:
        """Those of ``messages`` that may not go now, each with why."""
        with self.store.engine.connect() as conn:
            found = {m.id: relevant(conn, m.to_email, m.list_id) for m in messages}
        return {
            m.id: _why(found[m.id]) for m in messages
            if not _may_go(m.kind, standing_of(found[m.id]))
        }

    def _send(self, message: OutboxMessage) -> Recording:
        """Send ``message``; how to record what happened."""
        try:
            message_id = self._deliver(message)
        except UnknownOutcomeError as exc:
            return self._unknown(message, exc)
        except (PermanentProviderError, MessageError) as exc:
            return self._final(message, BatchState.FAILED, str(exc))
        except ProviderAuthError as exc:
            return self._retry(message, str(exc), AUTH_RETRY_SECONDS)
        except ProviderError as exc:
            return self._retry(message, str(exc), exc.retry_after)
        except ConfigError as exc:  # the publication file broken by an edit under way
            return self._retry(message, str(exc), None)
        except NewsletterError as exc:  # the list is gone, a template broke …
            return self._final(message, BatchState.FAILED, str(exc))
        at = self.store.now()
        return lambda conn: outbox_store.record_sent(conn, message.id, message_id, at=at)

    def _deliver(self, message: OutboxMessage) -> str:
        """Send ``message``; the provider's message id (or raise a ``ProviderError``)."""
        config = self._config()
        publication, mailing_list = config.publication, config.list(message.list_id)
        base = public_base(self.settings.public_url, publication)
        prepared, batch = one_off(
            message_id=message.id, kind=message.kind, publication=publication,
            mailing_list=mailing_list, to_email=message.to_email, subject=message.subject,
            html=message.html, text=message.text,
            unsubscribe_url=unsubscribe_url(base, self._signer, message.to_email.lower(),
                                            message.list_id),
        )
        result = self.provider.send_batch(prepared, batch)
        answer = result.results[0] if len(result.results) else None
        if answer is None:
            raise UnknownOutcomeError("the provider's answer did not mention the message",
                                      provider=self.provider.name)
        if answer.status != DeliveryStatus.SENT:
            kind = ProviderError if answer.retryable else PermanentProviderError
            raise kind(answer.error or str(answer.status), provider=self.provider.name)
        return answer.message_id or result.provider_batch_id

    def _retry(self, message: OutboxMessage, error: str, wait: float | None) -> Recording:
        if message.attempts >= self.settings.max_attempts:
            return self._final(message, BatchState.FAILED,
                               f"gave up after {message.attempts} attempts: {error}")
        due = self.store.now() + timedelta(seconds=delay(message.attempts, wait))
        log.warning("reader outbox: message %s to be tried again at %s: %s",
                    message.id, due.isoformat(timespec="seconds"), error)
        return lambda conn: outbox_store.retry_at(conn, message.id, due, error)

    def _unknown(self, message: OutboxMessage, exc: UnknownOutcomeError) -> Recording:
        """A provider that drops repeated keys is asked again; any other may have sent it,
        and a second copy of a confirmation is not worth the risk of one more email."""
        if self.provider.idempotent:
            return self._retry(message, str(exc), exc.retry_after)
        return self._final(message, BatchState.UNKNOWN, str(exc))

    def _final(self, message: OutboxMessage, state: BatchState, error: str) -> Recording:
        log.warning("reader outbox: message %s %s: %s", message.id, state, error)
        return lambda conn: outbox_store.record_outcome(conn, message.id, state, error)


def _may_go(kind: str, now: Standing) -> bool:
    return now is Standing.CLEAR or (now is Standing.UNSUBSCRIBED and kind == CONFIRMING)


def _why(found: list[Suppression]) -> str:
    """Which suppressions stopped a message (never the address: a forgotten reader's row
    says only that they were forgotten)."""
    reasons = ", ".join(
        "forgotten" if s.email.startswith(FORGOTTEN)
        else f"{s.reason} ({'every list' if s.scope == ALL_LISTS else f'list {s.scope}'})"
        for s in found
    )
    return f"not sent: the address is suppressed: {reasons}"


@contextmanager
def sending(
    settings: Settings, store: Store, *, provider: Provider | None = None
) -> Iterator[OutboxSender]:
    """An ``OutboxSender`` thread for the ``with`` block (the daemon, the web app's life)."""
    sender = OutboxSender(settings, store, provider=provider)
    sender.start()
    try:
        yield sender
    finally:
        sender.stop()
