"""The migrations build exactly the schema the code declares, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from newsletter.store import Store, db
from newsletter.store.tables import metadata


def test_migrated_schema_matches_the_declared_tables(store: Store) -> None:
    with store.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []


def test_the_head_revision_named_in_code_is_the_newest_migration(store: Store) -> None:
    assert db.head_revision(store.engine) == db.HEAD_REVISION
    assert db.current_revision(store.engine) == db.HEAD_REVISION
