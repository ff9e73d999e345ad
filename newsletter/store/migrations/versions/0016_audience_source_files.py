"""each member file an audience was read from, so that rows appended since are read alone

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 05:00:00.000000

A list that takes sign-ups changes every week, if only by the rows appended to its sign-up
file, and its audience was read whole again each time. ``audience_sources.files`` keeps the
name, size and SHA-256 of each member file an audience was read from: when the files are the
same but for rows appended to the last one, the next issue copies the earlier audience and
reads only the appended rows. Rows recorded before have no files, and match nothing: the key
they were stored under is of another form.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audience_sources") as batch:
        batch.add_column(sa.Column("files", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audience_sources") as batch:
        batch.drop_column("files")
