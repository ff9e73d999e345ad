"""when a batch's request started; suppressions by when they were added

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 03:00:00.000000

A batch is committed ``sending`` when a sender claims it, and may then wait for the rate
limiter; a sender killed during that wait sent nothing, yet its batch was settled as an
unknown outcome ("may have been delivered"). ``batches.request_started_at`` is written just
before the request: a dead sender's batch without it goes back to ``pending``. Batches left
``sending`` by the code before this revision are taken as started, as that code did.

A send drops the recipients suppressed since its audience was frozen just before each
batch's request; the index on ``suppressions.created_at`` finds those few rows.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

batches = sa.table(
    "batches",
    sa.column("state", sa.String),
    sa.column("request_started_at", sa.Float),
)
#: What a batch left ``sending`` before this revision is given: started, at an unknown time.
STARTED_AT_AN_UNKNOWN_TIME = 1.0


def upgrade() -> None:
    op.add_column(
        "batches",
        sa.Column("request_started_at", sa.Float(), nullable=False, server_default="0"),
    )
    op.execute(
        sa.update(batches)
        .where(batches.c.state == "sending")
        .values(request_started_at=STARTED_AT_AN_UNKNOWN_TIME)
    )
    op.create_index("ix_suppressions_created_at", "suppressions", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_suppressions_created_at", table_name="suppressions")
    with op.batch_alter_table("batches") as batch:
        batch.drop_column("request_started_at")
