"""The publication under test: a few hundred synthetic members and one queued weekly issue."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from newsletter.config import VARIABLES, Settings, load_settings
from newsletter.models import SuppressionReason
from newsletter.publisher import Publisher
from newsletter.store import Store, issues, suppressions

REPO = Path(__file__).resolve().parents[2]
MEMBER_COUNT = 300
BATCH_SIZE = 20  # 15 batches: enough to crash in the middle of a send
FREEZE_CHUNK = 100  # the audience is frozen in four transactions: a crash can fall between
CITIES = ("Kellmouth", "Truro", "Falmouth")
SUPPRESSED = frozenset({"reader007@example.com", "reader211@example.com"})
#: Variables the package reads; a developer's own values must not leak into the sender.
PACKAGE_VARIABLES = frozenset({v.name for v in VARIABLES} | {"NEWSLETTER_HOME"})


@dataclass(frozen=True)
class Audience:
    """Who the issue owes a copy to, and who it must not write to."""

    members: frozenset[str]
    suppressed: frozenset[str]

    @property
    def deliverable(self) -> frozenset[str]:
        return self.members - self.suppressed


def write_members(home: Path) -> Audience:
    """The weekly list's CSV, with one duplicate row (differing in case) as real files have."""
    emails = [f"reader{i:03d}@example.com" for i in range(MEMBER_COUNT)]
    rows = [f"{email},Reader {i:03d} Ørsted,{CITIES[i % 3]}" for i, email in enumerate(emails)]
    rows.append("READER001@Example.com,Reader One Again,Truro")
    path = home / "subscribers" / "weekly.csv"
    path.write_text("email,name,city\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return Audience(frozenset(emails), SUPPRESSED)


def sender_environment(
    provider: str, database_url: str, provider_variables: Mapping[str, str], concurrency: int,
) -> dict[str, str]:
    """The environment every sender process of one test gets: same database, same key."""
    inherited = {k: v for k, v in os.environ.items() if k not in PACKAGE_VARIABLES}
    python_path = os.pathsep.join(filter(None, [str(REPO), inherited.get("PYTHONPATH")]))
    return {
        **inherited,
        **provider_variables,
        "PYTHONPATH": python_path,
        "NEWSLETTER_PROVIDER": provider,
        "NEWSLETTER_DATABASE_URL": database_url,
        "NEWSLETTER_SECRET_KEY": "crash-test-signing-key",
        "NEWSLETTER_BATCH_SIZE": str(BATCH_SIZE),
        "NEWSLETTER_FREEZE_CHUNK": str(FREEZE_CHUNK),
        "NEWSLETTER_CONCURRENCY": str(concurrency),
        "NEWSLETTER_HTTP_TIMEOUT": "10",
        "NEWSLETTER_LOG_LEVEL": "warning",
        # The fake provider has no account limit (Resend's default 2/s would only slow
        # these tests down); a test that wants one sets it.
        "NEWSLETTER_RATE_REQUESTS": "0",
        # The tripwires are in the sender's own process: no helper may take its batches.
        "NEWSLETTER_PROCESSES": "1",
    }


def queue_weekly_issue(home: Path, environment: Mapping[str, str]) -> int:
    """Collect the example articles, draft and queue the weekly issue; returns its id."""
    settings = load_settings(home, environ=environment)
    store = Store.open(settings.database_url)
    try:
        _suppress(store, SUPPRESSED)
        return _queue(settings, store)
    finally:
        store.close()


def queue_again(home: Path, environment: Mapping[str, str], issue_id: int, *,
                unsubscribed: str) -> int:
    """Queue another weekly issue of ``issue_id``'s articles, once ``unsubscribed`` left."""
    settings = load_settings(home, environ=environment)
    store = Store.open(settings.database_url)
    try:
        _suppress(store, frozenset({unsubscribed}))
        publisher = Publisher(settings, store)
        with store.engine.connect() as conn:
            articles = issues.article_ids(conn, issue_id)
        [again] = publisher.draft("weekly", article_ids=articles)
        publisher.queue(again)
        return again
    finally:
        store.close()


def _suppress(store: Store, addresses: frozenset[str]) -> None:
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        for email in sorted(addresses):
            suppressions.add(conn, email, SuppressionReason.UNSUBSCRIBED, source="crash test",
                             at=now)


def _queue(settings: Settings, store: Store) -> int:
    publisher = Publisher(settings, store)
    publisher.collect()
    [issue_id] = publisher.draft("weekly")
    publisher.queue(issue_id)
    return issue_id
