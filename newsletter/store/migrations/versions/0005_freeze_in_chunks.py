"""freeze an audience in chunks, under a lease

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 13:30:00.000000

An audience used to be frozen in one transaction, and nothing could be sent until it had
committed: five seconds of a million-member send in which every other core waited. It is
now frozen in chunks, each committed with its batches, so that helper processes and other
workers send the first batches while the rest is read. One worker at a time freezes: it
holds the issue's freeze lease (``freeze_owner`` until ``freeze_until``), renewed with each
chunk; a worker that finds the lease's holder dead takes the freeze over from the start,
and the rows already committed are kept (``ON CONFLICT DO NOTHING`` on the address).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("issues") as table:
        table.add_column(
            sa.Column("freeze_owner", sa.String(200), nullable=False, server_default="")
        )
        table.add_column(
            sa.Column("freeze_until", sa.Float(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("issues") as table:
        table.drop_column("freeze_until")
        table.drop_column("freeze_owner")
