"""The desk bench's database: issues over four lists in every state, one large issue sent,
and an account to sign in with. ``bench/desk.py`` seeds it; its docstring says what is in it.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, String, cast, insert, literal, select, update

sys.path.insert(0, str(Path(__file__).resolve().parent))

from send import make_home

from newsletter.config import load_settings
from newsletter.models import BatchState, DeliveryStatus, IssueKind, IssueState, Recipient
from newsletter.publisher import Publisher
from newsletter.store import Store, audience
from newsletter.store import issues as issue_store
from newsletter.store.tables import articles, batches, events, recipients, suppressions
from newsletter.web.desk import accounts

USER, PASSWORD = "bench", "a bench password, long enough"
NOW = datetime.now(UTC).replace(microsecond=0)
LISTS = ("weekly", "daily", "offers", "alerts")
#: Recipients of each of the other sent issues: the issues page counts them per issue.
OTHER_AUDIENCE = 200

EXTRA_LISTS = "".join(f"""
[lists.{name}]
title = "The {name} letter"
members = ["few.csv"]
sources = ["articles"]
cadence = "digest"
approval = "editor"
timezone = "{zone}"
""" for name, zone in zip(LISTS, ("Europe/Paris", "UTC", "America/New_York", "Asia/Tokyo"),
                          strict=True))


def make_desk_home(root: Path, recipients: int) -> Path:
    """``bench/send.py``'s publication (the list ``bench`` of ``recipients`` members, for the
    sends) with four more lists for the seeded issues."""
    home = make_home(root, recipients)
    with (home / "subscribers" / "publication.toml").open("a") as out:
        out.write(EXTRA_LISTS)
    (home / "subscribers" / "few.csv").write_text("email,name\nreader@bench.example.org,R\n")
    return home


#: The seeded issues' states, in proportion: most sent, as a publication's history is.
STATE_SHARES = (
    (IssueState.SENT, 85), (IssueState.PARTIALLY_FAILED, 4), (IssueState.CANCELLED, 4),
    (IssueState.DRAFT, 3), (IssueState.QUEUED, 2), (IssueState.PAUSED, 2),
)
#: How an issue gets to each state, as the state machine allows.
PATHS = {
    IssueState.DRAFT: (),
    IssueState.QUEUED: (IssueState.QUEUED,),
    IssueState.CANCELLED: (IssueState.CANCELLED,),
    IssueState.PAUSED: (IssueState.QUEUED, IssueState.PAUSED),
    IssueState.SENT: (IssueState.QUEUED, IssueState.SENDING, IssueState.SENT),
    IssueState.PARTIALLY_FAILED: (IssueState.QUEUED, IssueState.SENDING,
                                  IssueState.PARTIALLY_FAILED),
}


def state_of(number: int) -> IssueState:
    """The ``number``-th seeded issue's state: ``STATE_SHARES`` spread over every hundred."""
    slot = number % 100
    for state, share in STATE_SHARES:
        if slot < share:
            return state
        slot -= share
    return IssueState.SENT


def seed_issues(store: Store, count: int, article_ids: list[int]) -> None:
    """``count`` issues over ``LISTS``, one a day until today, each taken through the state
    machine to its state; the sent ones with ``OTHER_AUDIENCE`` recipients in two batches."""
    with store.engine.begin() as conn:
        for n in range(count):
            at = NOW - timedelta(days=count - n)
            issue_id = issue_store.create(
                conn, list_id=LISTS[n % len(LISTS)], kind=IssueKind.DIGEST,
                subject=f"Issue {n}: the week in review", preheader="", intro_md="",
                article_ids=article_ids[n % 3:n % 3 + 2], at=at)
            for step in PATHS[state_of(n)]:
                issue_store.transition(conn, issue_id, step, at + timedelta(minutes=1))
            if state_of(n) in (IssueState.SENT, IssueState.PARTIALLY_FAILED):
                small_audience(conn, issue_id, LISTS[n % len(LISTS)],
                               failing=state_of(n) is IssueState.PARTIALLY_FAILED, at=at)


def small_audience(conn: Connection, issue_id: int, list_id: str, *, failing: bool,
                   at: datetime) -> None:
    half = OTHER_AUDIENCE // 2
    rows = []
    for seq in range(2):
        batch_id = conn.execute(insert(batches).values(
            issue_id=issue_id, seq=seq, state=str(BatchState.SENT), size=half,
            idempotency_key=f"bench-{issue_id}-{seq}", updated_at=at,
        ).returning(batches.c.id)).scalar_one()
        rows += [{"issue_id": issue_id, "batch_id": batch_id, "email": f"r{seq}-{i}@example.org",
                  "name": "", "fields": {}, "list_id": list_id,
                  "status": str(DeliveryStatus.FAILED if failing and i < 3 else
                                DeliveryStatus.QUEUED), "updated_at": at}
                 for i in range(half)]
    conn.execute(insert(recipients), rows)


def large_issue(store: Store, count: int, article_ids: list[int]) -> int:
    """An issue of ``count`` recipients, sent: a batch in a hundred failed whole, one unknown,
    one address in 200 suppressed before the freeze, one row in 250 refused by the provider,
    and provider events (delivered, opened, bounced, complained) on some rows."""
    at = NOW - timedelta(hours=2)
    with store.engine.begin() as conn:
        issue_id = issue_store.create(
            conn, list_id=LISTS[0], kind=IssueKind.DIGEST, subject="The big one",
            preheader="", intro_md="", article_ids=article_ids[:5], at=at)
        issue_store.transition(conn, issue_id, IssueState.QUEUED, at)
        issue_store.transition(conn, issue_id, IssueState.SENDING, at)
        conn.execute(insert(suppressions), [
            {"email": f"reader{i}@example.org", "scope": "*", "reason": "bounced-hard",
             "source": "bench", "detail": "", "created_at": at} for i in range(3, count, 200)])
    members = (Recipient(f"reader{i}@example.org", f"Reader {i}", {}, LISTS[0])
               for i in range(count))
    audience.freeze_audience(store.engine, issue_id, members, batch_size=1000, at=at)
    with store.engine.begin() as conn:
        outcomes(conn, issue_id)
        provider_events(conn, issue_id, at)
        issue_store.transition(conn, issue_id, IssueState.PARTIALLY_FAILED, NOW,
                               finished_at=NOW)
    return issue_id


def outcomes(conn: Connection, issue_id: int) -> None:
    of_issue = batches.c.issue_id == issue_id
    failed_batches = select(batches.c.id).where(of_issue, batches.c.seq % 100 == 42)
    unknown_batch = select(batches.c.id).where(of_issue, batches.c.seq == 7)
    conn.execute(update(batches).where(of_issue).values(state=str(BatchState.SENT)))
    conn.execute(update(batches).where(batches.c.id.in_(failed_batches))
                 .values(state=str(BatchState.FAILED), error="HTTP 400: bad request"))
    conn.execute(update(batches).where(batches.c.id.in_(unknown_batch))
                 .values(state=str(BatchState.UNKNOWN), error="timed out"))
    for status, error, where in (
        (DeliveryStatus.FAILED, "HTTP 400: bad request", recipients.c.batch_id.in_(failed_batches)),
        (DeliveryStatus.UNKNOWN, "timed out", recipients.c.batch_id.in_(unknown_batch)),
        (DeliveryStatus.FAILED, "550 5.1.1 no such user", recipients.c.id % 250 == 17),
    ):
        conn.execute(update(recipients)
                     .where(recipients.c.issue_id == issue_id, recipients.c.batch_id.is_not(None),
                            recipients.c.status == str(DeliveryStatus.QUEUED), where)
                     .values(status=str(status), error=error))


#: Provider events on the large issue: (status, one row in how many).
EVENTS = ((DeliveryStatus.DELIVERED, 40), (DeliveryStatus.OPENED, 90),
          (DeliveryStatus.BOUNCED_HARD, 700), (DeliveryStatus.COMPLAINED, 5000))


def provider_events(conn: Connection, issue_id: int, at: datetime) -> None:
    """Each event in the event log and on its ledger row, as a webhook leaves them."""
    for status, every in EVENTS:
        chosen = (recipients.c.issue_id == issue_id, recipients.c.id % every == 5,
                  recipients.c.status == str(DeliveryStatus.QUEUED))
        rows = select(literal("mailgun"), literal(f"bench-{status}-") + cast(recipients.c.id,
                      String), literal(str(status)), recipients.c.email,
                      literal(f"bench-{issue_id}"), recipients.c.issue_id,
                      literal(at, events.c.at.type),
                      literal("")).where(*chosen)
        conn.execute(insert(events).from_select(
            ["provider", "event_id", "type", "email", "provider_message_id", "issue_id", "at",
             "detail"], rows))
        conn.execute(update(recipients).where(*chosen).values(status=str(status)))


def seed(home: Path, env: dict[str, str], others: int, count: int) -> int:
    """The seeded database, and the large issue's id."""
    settings = load_settings(home, environ=env)
    store = Store.open(settings.database_url)
    try:
        Publisher(settings, store).collect()
        with store.engine.connect() as conn:
            article_ids = list(conn.execute(select(articles.c.id).order_by(articles.c.id))
                               .scalars())
        seed_issues(store, others, article_ids)
        accounts.add(store, USER, "editor", PASSWORD)
        return large_issue(store, count, article_ids)
    finally:
        store.close()
