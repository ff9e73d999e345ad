"""A small publication written for the scheduler, lint, status and state-machine tests.

Each test states the lists it needs (cadence, schedule, zone, approval, size); articles are
Markdown files in the publication's folder source, collected for real.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from newsletter.config import Settings, load_settings
from newsletter.delivery.base import Provider
from newsletter.publisher import Publisher
from newsletter.store import Store, utcnow

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ListSpec:
    id: str
    cadence: str = "digest"
    schedule: str | None = "0 8 * * mon"
    timezone: str = "UTC"
    approval: str = "auto"
    members: int = 3
    from_email: str = ""


def publication_toml(lists: Sequence[ListSpec], *, base_url: str, from_email: str) -> str:
    parts = [
        "[publication]",
        'name = "Harbour Notes"',
        f'base_url = "{base_url}"',
        f'from_email = "{from_email}"',
        'postal_address = "1 Quay Street, Porthaven"',
        "",
        "[sources.posts]",
        'type = "folder"',
        'path = "articles"',
    ]
    for spec in lists:
        parts += [
            "",
            f"[lists.{spec.id}]",
            f'title = "{spec.id.title()} list"',
            f'members = "{spec.id}.csv"',
            'sources = "posts"',
            f'cadence = "{spec.cadence}"',
            f'timezone = "{spec.timezone}"',
            f'approval = "{spec.approval}"',
        ]
        if spec.cadence == "digest" and spec.schedule:
            parts.append(f'schedule = "{spec.schedule}"')
        if spec.from_email:
            parts.append(f'from_email = "{spec.from_email}"')
    return "\n".join(parts) + "\n"


def write_publication(
    home: Path,
    lists: Sequence[ListSpec],
    *,
    base_url: str = "https://notes.example.org",
    from_email: str = "editor@notes.example.org",
) -> None:
    """(Re)write the publication file and each list's members."""
    subscribers = home / "subscribers"
    subscribers.mkdir(parents=True, exist_ok=True)
    for old in subscribers.glob("*"):
        old.unlink()
    (subscribers / "publication.toml").write_text(
        publication_toml(lists, base_url=base_url, from_email=from_email), encoding="utf-8"
    )
    for spec in lists:
        rows = [f"{spec.id}-{n:05d}@example.com,Reader {n}" for n in range(spec.members)]
        (subscribers / f"{spec.id}.csv").write_text(
            "email,name\n" + "\n".join(rows) + "\n", encoding="utf-8"
        )


def make_home(root: Path, lists: Sequence[ListSpec], **publication: str) -> Path:
    """A publication folder under ``root``: templates from this repository, no articles yet."""
    home = root / "publication"
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "templates").exists():
        shutil.copytree(REPO / "templates", home / "templates")
    (home / "articles").mkdir(exist_ok=True)
    write_publication(home, lists, **publication)
    return home


def write_article(
    home: Path,
    slug: str,
    published: datetime,
    *,
    title: str = "",
    body: str = "Plain news.",
    extra: str = "",
) -> None:
    title = title or slug.replace("-", " ").capitalize()
    when = f"{published.astimezone(UTC):%Y-%m-%d %H:%M}"
    front = f"---\ntitle: {title}\ndate: {when}\nsummary: About {slug}.\n{extra}---\n"
    (home / "articles" / f"{slug}.md").write_text(front + body + "\n", encoding="utf-8")


class Clock:
    """A settable clock for the store: what ``now`` is, as far as the pipeline knows."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def open_publication(
    home: Path,
    database_url: str,
    clock: Clock | None = None,
    provider: Provider | None = None,
    **changes: object,
) -> tuple[Settings, Store, Publisher]:
    settings = load_settings(home, environ={}).with_changes(database_url=database_url, **changes)
    store = Store.open(database_url, clock or utcnow)
    return settings, store, Publisher(settings, store, provider=provider)
