"""The migrations build exactly the schema the code declares, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, select

from newsletter.store import Store, db
from newsletter.store.tables import metadata, suppressions


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
