"""What the desk tests share: a publication with issues, two accounts, a clock that moves
only when told, and a browser-like client that signs in through the real forms."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import requests
import time_machine
from sqlalchemy import insert

from newsletter.config import Settings
from newsletter.models import SuppressionReason
from newsletter.publisher import Publisher
from newsletter.schedule.scheduler import build_scheduler, job_specs, stop_scheduler, sync_jobs
from newsletter.store import Store, make_engine, suppressions
from newsletter.store import issues as issue_store
from newsletter.store.tables import articles
from newsletter.web import Site, create_app
from newsletter.web.desk import accounts
from tests.servers.webapp import WebApp

#: Served over http on 127.0.0.1: cookies without Secure, so the test client sends them.
DESK_SITE = Site(name="The Example Weekly", base_url="http://127.0.0.1",
                 list_titles={"weekly": "Weekly digest"})
ADMIN, EDITOR = "ada", "eddie"
PASSWORD = "correct horse battery"
XSS_TITLE = "<img src=x onerror=alert(1)>"


class StepClock:
    """The store's clock: it moves only when a test says so."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Desk:
    settings: Settings
    store: Store
    clock: StepClock
    publisher: Publisher
    issue_id: int
    xss_issue_id: int

    def state(self, issue_id: int | None = None) -> str:
        with self.store.engine.connect() as conn:
            return str(issue_store.get(conn, issue_id or self.issue_id).state)

    def app(self):  # type: ignore[no-untyped-def]
        return create_app(self.settings, self.store, site=DESK_SITE)


def make_desk(settings: Settings, database_url: str) -> Iterator[Desk]:
    settings = settings.with_changes(database_url=database_url)
    clock = StepClock()
    store = Store.open(database_url, clock=clock)
    publisher = Publisher(settings, store)
    publisher.collect()
    issue_id = publisher.draft("weekly")[0]
    xss_issue_id = publisher.draft("every-article", article_ids=[hostile_article(store)])[0]
    accounts.add(store, ADMIN, "admin", PASSWORD)
    accounts.add(store, EDITOR, "editor", PASSWORD)
    try:
        yield Desk(settings, store, clock, publisher, issue_id, xss_issue_id)
    finally:
        store.close()


def hostile_article(store: Store) -> int:
    """An article whose title is markup and whose body carries a script, written straight
    to the store, past the sanitiser a real source goes through."""
    now = store.now()
    with store.engine.begin() as conn:
        return int(conn.execute(insert(articles).values(
            source_id="articles", uid="hostile", title=XSS_TITLE,
            url="https://news.example.org/hostile", author="", published_at=now,
            summary_html="<p>Summary<script>alert(1)</script></p>",
            content_html="<p>Body</p><script>alert(1)</script>", image_url="", tags=[],
            content_hash="x", first_seen_at=now, updated_at=now, archived=0,
        ).returning(articles.c.id)).scalar_one())


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def sign_in(
    web: WebApp, name: str = EDITOR, password: str = PASSWORD, *,
    session: requests.Session | None = None, next_path: str = "",
) -> requests.Response:
    """Sign in through the form, as a browser does: GET it, POST it with its token."""
    client = session or web.session
    page = client.get(web.url("/desk/signin"))
    data = {"csrf": csrf_of(page.text), "name": name, "password": password, "next": next_path}
    return client.post(web.url("/desk/signin"), data=data, allow_redirects=False)


def session_cookie(client: requests.Session) -> str | None:
    return client.cookies.get("desk")


def signed_in(web: WebApp, name: str = EDITOR) -> requests.Session:
    """A client of its own, signed in as ``name``."""
    client = requests.Session()
    client.trust_env = False
    assert sign_in(web, name, session=client).status_code == 303
    return client


ALERT = re.compile(r'<div class="alert" role="alert"[^>]*>(.*?)</div>', re.S)


def alert_of(response: requests.Response) -> str:
    """The text of the page's alert box, tags dropped and spaces squeezed."""
    found = ALERT.search(response.text)
    if not found:
        return ""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split())


#: When the jobs ``schedule_jobs`` stores were computed: the next digest of the weekly list
#: is then Monday 2026-11-23 08:00 in London.
SCHEDULED_AT = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


def schedule_jobs(desk: Desk) -> None:
    """The jobs a scheduler started at ``SCHEDULED_AT`` would store."""
    with time_machine.travel(SCHEDULED_AT, tick=False):
        scheduler = build_scheduler(desk.settings, make_engine(desk.settings.database_url))
        scheduler.start(paused=True)
        sync_jobs(scheduler, job_specs(desk.settings, desk.publisher.config))
        stop_scheduler(scheduler)


#: What ``seed_suppressions`` stores: a note with markup, and when.
SUPPRESSION_MARKUP = "<script>alert(1)</script><b>rude</b>"
SUPPRESSED_AT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def seed_suppressions(desk: Desk) -> None:
    """One suppression of each kind a page or an answer treats differently."""
    with desk.store.engine.begin() as conn:
        suppressions.add(conn, "bounced@example.com", SuppressionReason.BOUNCED_HARD,
                         source="webhook:mailgun", detail=SUPPRESSION_MARKUP, at=SUPPRESSED_AT)
        suppressions.add(conn, "angry@example.com", SuppressionReason.COMPLAINED,
                         scope="weekly", source="webhook:ses", detail="=HYPERLINK(1)",
                         at=SUPPRESSED_AT)
        suppressions.add(conn, "leaver@example.com", SuppressionReason.UNSUBSCRIBED,
                         scope="weekly", source="one-click", at=SUPPRESSED_AT)
        suppressions.add(conn, "per_cent%x@example.com", SuppressionReason.MANUAL,
                         at=SUPPRESSED_AT)
