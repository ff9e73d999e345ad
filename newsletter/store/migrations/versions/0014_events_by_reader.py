"""a reader's events found by address and by message id

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 17:40:00.000000

``subscribers show`` and ``subscribers forget`` look up one reader's events by address, and
the events a provider sent without an address by the ids of the reader's messages. Neither
column was indexed, so each request read the whole table, which grows by several events
per recipient per issue. One index on both answers both look-ups.
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_events_email_message", "events", ["email", "provider_message_id"])


def downgrade() -> None:
    op.drop_index("ix_events_email_message", table_name="events")
