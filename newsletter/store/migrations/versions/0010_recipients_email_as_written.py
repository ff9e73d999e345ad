"""the address as the list wrote it, beside the lower-cased one

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 03:10:00.000000

A ledger row kept only the lower-cased address, and a send used it: a member written
``David.Ostergaard@…`` was mailed at ``david.ostergaard@…``, though the part before the @
may be case-sensitive where it is delivered. ``recipients.email_as_written`` keeps the
list's first spelling when it differs, and a send uses it; ``email`` stays lower-cased for
everything that compares addresses. Rows written before this revision have none: they go
on being sent lower-cased.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("recipients", sa.Column("email_as_written", sa.String(320), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("recipients") as table:
        table.drop_column("email_as_written")
