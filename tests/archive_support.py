"""What the archive's tests share: the example publication with issues really drafted and
rendered from its articles, then marked sent, a reader of each on record, and one issue
whose subject is hostile markup.

The weekly list takes sign-ups (``signups`` in its ``publication.toml``); the list
``every-article`` does not, and has nothing sent. Issues are a day apart, oldest first.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select, update

from newsletter.config import Settings
from newsletter.models import IssueState
from newsletter.publisher import Publisher
from newsletter.store import Store
from newsletter.store.tables import articles, issues, recipients
from newsletter.web import create_app
from tests.servers.webapp import WebApp

XSS_SUBJECT = "<script>alert('subject')</script> & \"quoted\" <img src=x onerror=alert(2)>"
SUBJECTS = ("Dredging starts at the harbour", XSS_SUBJECT, "Lanterns along Fore Street")
PREHEADERS = ("The harbour, in brief.", "Markup stays text.", "The lantern walk, and more.")
FIRST_SENT = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


class Clock:
    """The app's store clock: time moves only when a test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Archive:
    settings: Settings
    store: Store
    #: The sent issues of ``weekly``, oldest first.
    ids: list[int] = field(default_factory=list)
    readers: list[tuple[str, str]] = field(default_factory=list)

    def publish(self, subject: str, preheader: str, sent_at: datetime) -> int:
        """Draft an issue of ``weekly`` from two articles, render it, mark it sent."""
        publisher = Publisher(self.settings, self.store)
        with self.store.engine.connect() as conn:
            chosen = list(conn.execute(select(articles.c.id).order_by(articles.c.id)).scalars())
        (issue_id,) = publisher.draft("weekly", article_ids=chosen[:2], subject=subject,
                                      preheader=preheader)
        with self.store.engine.begin() as conn:
            conn.execute(update(issues).where(issues.c.id == issue_id).values(
                state=str(IssueState.SENT), started_at=sent_at, finished_at=sent_at))
        publisher.render(issue_id)
        with self.store.engine.begin() as conn:
            conn.execute(insert(recipients), [
                {"issue_id": issue_id, "email": email, "name": name, "list_id": "weekly",
                 "status": "sent", "provider_message_id": f"m-{issue_id}-{n}",
                 "updated_at": sent_at} for n, (email, name) in enumerate(self.readers)])
        self.ids.append(issue_id)
        return issue_id


def members(home: Path) -> list[tuple[str, str]]:
    """Every (address, name) of the publication's member files, each address once."""
    found: dict[str, str] = {}
    for path in sorted((home / "subscribers").glob("*.csv")):
        rows = [line for line in path.read_text().splitlines() if not line.startswith("#")]
        for row in csv.DictReader(rows):
            found.setdefault(row["email"].lower(), row.get("name") or "")
    return list(found.items())


def take_signups(home: Path) -> None:
    toml = home / "subscribers" / "publication.toml"
    text = toml.read_text()
    if 'signups = "weekly-signups.csv"' in text:  # the example's weekly list takes them
        return
    marker = 'members = ["weekly.csv"]\n'
    assert marker in text
    toml.write_text(text.replace(marker, marker + 'signups = "weekly-signups.csv"\n', 1))


def make_archive(settings: Settings, store: Store) -> Archive:
    take_signups(settings.home)
    archive = Archive(settings, store, readers=members(settings.home))
    Publisher(settings, store).collect()
    for n, (subject, preheader) in enumerate(zip(SUBJECTS, PREHEADERS, strict=True)):
        archive.publish(subject, preheader, FIRST_SENT + timedelta(days=n))
    return archive


@contextmanager
def serve(settings: Settings, database_url: str, clock: Clock) -> Iterator[WebApp]:
    """The whole app on a store of its own whose clock the test holds (the archive rereads a
    list when its view is older than a second by that clock)."""
    app_store = Store.open(database_url, clock=clock)
    try:
        with WebApp(create_app(settings, app_store)) as running:
            yield running
    finally:
        app_store.close()
