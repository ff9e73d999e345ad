"""The fake provider server in tests: a running instance, settings for it, sample data."""

from __future__ import annotations

import html
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from newsletter.config import Settings
from newsletter.delivery.base import BatchRecipient, OutgoingBatch, PreparedIssue, Provider
from newsletter.delivery.providers.registry import make_provider
from newsletter.devtools.fakeprovider import FakeProviderServer
from newsletter.render.merge import MergeTemplate

SUBJECT = "Workers\u2013Internationalist weekly, for %%nl:name%%"
HTML = '<p>Hello %%nl:name%%!</p><p><a href="%%nl:unsubscribe_url%%">Unsubscribe</a></p>'
TEXT = "Hello %%nl:name%%!\nUnsubscribe: %%nl:unsubscribe_url%%\n"
NAMES = ("Ada & <Lovelace>", "Zoë Ångström", 'Grace "Amazing" Hopper', "Émile Zola")


@contextmanager
def fake_provider_server(**kwargs: Any) -> Iterator[FakeProviderServer]:
    with FakeProviderServer(**kwargs) as server:
        yield server


@contextmanager
def connected(
    server: FakeProviderServer, home: Path, name: str, **changes: Any
) -> Iterator[Provider]:
    """The named provider, pointed at the fake server with accepted credentials; closed after."""
    made = make_provider(provider_settings(server, home, name, **changes))
    try:
        yield made
    finally:
        made.close()


def provider_settings(server: FakeProviderServer, home: Path, provider: str,
                      **changes: Any) -> Settings:
    values = {**server.settings_values(), "http_timeout": 5.0, **changes}
    return Settings(home=home, provider=provider, **values)


def sample_issue(**changes: Any) -> PreparedIssue:
    fields: dict[str, Any] = {
        "issue_id": 7,
        "list_id": "weekly",
        "list_id_header": "Weekly digest <weekly.news.example.org>",
        "from_email": "news@news.example.org",
        "from_name": "The Workers\u2019 Weekly",
        "reply_to": "editor@news.example.org",
        "subject": MergeTemplate.parse(SUBJECT),
        "html": MergeTemplate.parse(HTML, escape=True),
        "text": MergeTemplate.parse(TEXT),
        "list_unsubscribe": MergeTemplate.parse("<%%nl:unsubscribe_url%%>"),
        "message_id_domain": "news.example.org",
        "tag": "weekly",
    }
    fields.update(changes)
    return PreparedIssue(**fields)


def unsubscribe_url(recipient_id: int) -> str:
    return f"https://news.example.org/u/tok{recipient_id}?list=weekly&src=email"


def sample_batch(
    size: int, key: str = "batch-7-1", first_id: int = 1, *, plain: bool = False
) -> OutgoingBatch:
    """``plain``: names and URLs with no character to escape in HTML."""
    recipients = []
    for rid in range(first_id, first_id + size):
        name = f"Reader {rid}" if plain else NAMES[rid % len(NAMES)] + f" {rid}"
        url = f"https://news.example.org/u/tok{rid}" if plain else unsubscribe_url(rid)
        values = {"name": name, "unsubscribe_url": url}
        recipients.append(BatchRecipient(rid, f"reader{rid}@example.com", name, values))
    return OutgoingBatch(batch_id=1, seq=1, idempotency_key=key, recipients=recipients)


def expected_copy(recipient: BatchRecipient) -> dict[str, str]:
    """What the recipient's copy must read after the provider's own merge."""
    name, url = recipient.values["name"], recipient.values["unsubscribe_url"]
    return {
        "subject": f"Workers\u2013Internationalist weekly, for {name}",
        "html": (f"<p>Hello {html.escape(name)}!</p>"
                 f'<p><a href="{html.escape(url)}">Unsubscribe</a></p>'),
        "text": f"Hello {name}!\nUnsubscribe: {url}\n",
        "list_unsubscribe": f"<{url}>",
    }
