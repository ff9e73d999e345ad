"""index batches for the claim query

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 20:10:00.000000

``claim`` asks for an issue's first pending batch in ``seq`` order. With an index on
``(issue_id, state)`` only, PostgreSQL read every pending batch of the issue and sorted them
on each claim (1,000 batches at 1M recipients: 0.46 ms; ten times that with 100-recipient
batches). With ``seq`` in the index it reads the first entry. The new index also serves
every query the old one did (same leading columns), so that one goes.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_batches_claim", "batches", ["issue_id", "state", "seq"], unique=False)
    op.drop_index("ix_batches_issue_state", table_name="batches")


def downgrade() -> None:
    op.create_index("ix_batches_issue_state", "batches", ["issue_id", "state"], unique=False)
    op.drop_index("ix_batches_claim", table_name="batches")
