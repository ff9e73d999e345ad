"""The migrations build exactly the schema the code declares, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import column, insert, select, table

from newsletter.store import Store, db
from newsletter.store.tables import batches, issue_events, metadata, suppressions


def test_migrated_schema_matches_the_declared_tables(store: Store) -> None:
    with store.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []


def test_the_head_revision_named_in_code_is_the_newest_migration(store: Store) -> None:
    assert db.head_revision(store.engine) == db.HEAD_REVISION
    assert db.current_revision(store.engine) == db.HEAD_REVISION


def test_suppressions_of_unicode_domains_are_rewritten_in_ascii(tmp_path: Path) -> None:
    """Migration 0007: addresses are now kept with their domain in ASCII (IDNA) form."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    command.upgrade(db.alembic_config(engine), "0006")
    at = datetime(2026, 11, 1, tzinfo=UTC)
    rows = [
        ("ann@b\u00fccher.example", "*"),  # rewritten
        ("bo@b\u00fccher.example", "weekly"),  # its ASCII form is suppressed already: dropped
        ("bo@xn--bcher-kva.example", "weekly"),
        ("z\u00fc@example.org", "*"),  # a Unicode local part: left as it was
        ("plain@example.org", "*"),
    ]
    with engine.begin() as conn:
        conn.execute(insert(suppressions), [
            {"email": email, "scope": scope, "reason": "unsubscribed", "source": "cli",
             "detail": "", "created_at": at} for email, scope in rows
        ])

    db.migrate(engine)

    with engine.connect() as conn:
        kept = set(conn.execute(select(suppressions.c.email, suppressions.c.scope)).all())
    engine.dispose()
    assert kept == {
        ("ann@xn--bcher-kva.example", "*"),
        ("bo@xn--bcher-kva.example", "weekly"),
        ("z\u00fc@example.org", "*"),
        ("plain@example.org", "*"),
    }


def test_batches_left_sending_before_0008_stay_in_doubt(tmp_path: Path) -> None:
    """Migration 0008: a batch left ``sending`` by the code before it may have been sent (that
    code did not record when a request started), so it is taken as started: recovery does not
    send it again. Pending batches are not started."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    command.upgrade(db.alembic_config(engine), "0007")
    at = datetime(2026, 11, 1, tzinfo=UTC)
    # The tables as 0007 left them: the declared ones have columns added since.
    old_issues = table("issues", *(column(name) for name in (
        "id", "list_id", "kind", "state", "subject", "preheader", "intro_md", "created_at",
        "updated_at", "provider", "html", "text", "web_html", "audience_frozen", "pause_reason")))
    old_batches = table("batches", *(column(name) for name in (
        "issue_id", "seq", "state", "size", "attempts", "idempotency_key", "next_attempt_at",
        "lease_owner", "lease_until", "updated_at", "provider_batch_id", "error")))
    with engine.begin() as conn:
        conn.execute(insert(old_issues).values(
            id=1, list_id="weekly", kind="digest", state="sending", subject="S", preheader="",
            intro_md="", created_at=at, updated_at=at, provider="", html="", text="",
            web_html="", audience_frozen=1, pause_reason=""))
        conn.execute(insert(old_batches), [
            {"issue_id": 1, "seq": seq, "state": state, "size": 1, "attempts": 1,
             "idempotency_key": f"k{seq}", "next_attempt_at": 0.0, "lease_owner": "",
             "lease_until": 0.0, "updated_at": at, "provider_batch_id": "", "error": ""}
            for seq, state in ((1, "sending"), (2, "pending"))
        ])

    command.upgrade(db.alembic_config(engine), "0008")

    with engine.connect() as conn:
        started = dict(conn.execute(select(batches.c.state, batches.c.request_started_at)).all())
    engine.dispose()
    assert started["sending"] > 0
    assert started["pending"] == 0


def test_history_written_before_0011_has_no_actor_and_downgrades(tmp_path: Path) -> None:
    """Migration 0011: events recorded before it say nobody (shown as the system), the desk's
    tables come and go with it."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    command.upgrade(db.alembic_config(engine), "0010")
    at = datetime(2026, 11, 1, tzinfo=UTC)
    old_issues = table("issues", *(column(name) for name in (
        "id", "list_id", "kind", "state", "subject", "preheader", "intro_md", "created_at",
        "updated_at", "provider", "html", "text", "web_html", "audience_frozen", "pause_reason",
        "freeze_owner", "freeze_until")))
    old_events = table("issue_events", *(column(name) for name in (
        "issue_id", "at", "from_state", "to_state", "note")))
    with engine.begin() as conn:
        conn.execute(insert(old_issues).values(
            id=1, list_id="weekly", kind="digest", state="draft", subject="S", preheader="",
            intro_md="", created_at=at, updated_at=at, provider="", html="", text="",
            web_html="", audience_frozen=0, pause_reason="", freeze_owner="", freeze_until=0))
        conn.execute(insert(old_events).values(
            issue_id=1, at=at, from_state="", to_state="draft", note="drafted"))

    command.upgrade(db.alembic_config(engine), "0011")
    with engine.connect() as conn:
        actors = conn.execute(select(issue_events.c.actor)).scalars().all()
    command.downgrade(db.alembic_config(engine), "0010")
    with engine.connect() as conn:
        left = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master")}
    engine.dispose()

    assert actors == [""]
    assert not {"desk_users", "desk_sessions", "desk_throttle"} & left
