"""what each issue's audience was frozen from, so that the next one can copy it

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 02:00:00.000000

A second issue to a list whose member files are byte for byte the same read every row of
them again, and wrote each through Python: most of a large send's time. ``audience_sources``
keeps, per issue, the key of what its audience was read from (the files' digests and the
reading's settings) and where its rows are; a later issue with the same key copies them in
SQL instead (``store.audience_sources``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audience_sources",
        sa.Column("issue_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  nullable=False),
        sa.Column("list_id", sa.String(100), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("first_row", sa.BigInteger(), nullable=False),
        sa.Column("last_row", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("duplicates", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["issue_id"], ["issues.id"], ondelete="CASCADE",
                                name=op.f("fk_audience_sources_issue_id_issues")),
        sa.PrimaryKeyConstraint("issue_id", name=op.f("pk_audience_sources")),
    )
    op.create_index("ix_audience_sources_list_key", "audience_sources", ["list_id", "key"])


def downgrade() -> None:
    op.drop_index("ix_audience_sources_list_key", table_name="audience_sources")
    op.drop_table("audience_sources")
