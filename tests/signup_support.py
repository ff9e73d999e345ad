"""What the sign-up tests share: a publication whose weekly list takes sign-ups, a clock the
test moves, and the messages the sender wrote to the outbox provider's folder."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy import select

from newsletter.config import Settings
from newsletter.lists.config import load_config
from newsletter.readers.outbox import OutboxSender
from newsletter.readers.signup import SignupForm, Signups
from newsletter.store import Store
from newsletter.store.tables import mail_outbox, signup_journal, signup_requests

LIST = "weekly"
#: Reads the confirmation link out of a message's text part.
CONFIRM_LINK = re.compile(r"https?://\S+/subscribe/[\w-]+/confirm/[\w.-]+")
#: The member file the example's weekly list reads, and one of its addresses.
MEMBER = "jose.nunez@example.org"


def take_signups(settings: Settings, *, welcome: bool = False) -> Settings:
    """Let the weekly list take sign-ups (into ``weekly-signups.csv``), with a welcome or
    without; as often as it likes."""
    path = settings.subscribers_dir / "publication.toml"
    text = path.read_text()
    if "signups =" not in text:
        text = text.replace('members = ["weekly.csv"]\n',
                            'members = ["weekly.csv"]\nsignups = "weekly-signups.csv"\n', 1)
    text = re.sub(r'signups = "weekly-signups.csv"\n(welcome = \w+\n)?',
                  f'signups = "weekly-signups.csv"\nwelcome = {str(welcome).lower()}\n', text,
                  count=1)
    path.write_text(text)
    assert load_config(settings).list(LIST).accepts_signups
    return settings


@dataclass
class Clock:
    """The store's clock, moved by hand."""

    at: datetime = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


def form(signups: Signups, address: str, *, name: str = "", clock: Clock | None = None,
         **fields: str) -> SignupForm:
    """A form as a reader fills it: stamped now, and sent back ten seconds later."""
    started = fields.pop("started", signups.stamp(LIST))
    if clock is not None:
        clock.advance(seconds=10)
    return SignupForm(LIST, address, name, started=started, **fields)


def rows(store: Store, table: Any) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table).order_by(table.c.id))]


def outbox_rows(store: Store) -> list[dict[str, Any]]:
    return rows(store, mail_outbox)


def journal_rows(store: Store) -> list[dict[str, Any]]:
    return rows(store, signup_journal)


def request_rows(store: Store) -> list[dict[str, Any]]:
    return rows(store, signup_requests)


def link_in(text: str) -> str:
    found = CONFIRM_LINK.search(text)
    assert found, f"no confirmation link in {text!r}"
    return found.group(0)


def token_of(link: str) -> str:
    return link.rsplit("/", 1)[1]


def sent_messages(settings: Settings, list_id: str = LIST) -> list[EmailMessage]:
    """The messages the outbox provider wrote for ``list_id``'s readers, oldest first."""
    folder = settings.outbox_path / f"readers-{list_id}"
    return [_parsed(path) for path in sorted(folder.glob("*.eml"))] if folder.is_dir() else []


def _parsed(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


@contextmanager
def sender(settings: Settings, store: Store) -> Iterator[OutboxSender]:
    running = OutboxSender(settings, store)
    try:
        yield running
    finally:
        running.stop()
