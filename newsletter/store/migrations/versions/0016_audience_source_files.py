"""each member file an audience was read from, so that rows appended since are read alone;
how each issue's audience was frozen

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 05:00:00.000000

A list that takes sign-ups changes every week, if only by the rows appended to its sign-up
file, and its audience was read whole again each time. ``audience_sources.files`` keeps the
name, size and SHA-256 of each member file an audience was read from: when the files are the
same but for rows appended to the last one, the next issue copies the earlier audience and
reads only the appended rows. Rows recorded before have no files, and match nothing: the key
they were stored under is of another form.

``issue_audiences`` says, for editors, how each issue's audience was frozen: read from the
list's files, or copied from an earlier issue (and what was read after the copy), with how
many rows it has and how many repeats were dropped.
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
    op.create_table(
        "issue_audiences",
        sa.Column("issue_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  nullable=False),
        sa.Column("copied_from", sa.BigInteger(), nullable=True),
        sa.Column("appended_to", sa.String(255), nullable=False),
        sa.Column("from_line", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=True),
        sa.Column("duplicates", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["issue_id"], ["issues.id"], ondelete="CASCADE",
                                name=op.f("fk_issue_audiences_issue_id_issues")),
        sa.PrimaryKeyConstraint("issue_id", name=op.f("pk_issue_audiences")),
    )


def downgrade() -> None:
    op.drop_table("issue_audiences")
    with op.batch_alter_table("audience_sources") as batch:
        batch.drop_column("files")
