"""issues numbered per list

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 03:30:00.000000

The masthead said "Issue N" with the database id, shared by every list, so a list's first
digest could say "Issue 2". Each issue now has a number in its list (``issues.number``),
taken from a counter per list (``issue_numbers``) that never goes back, so a number is
not handed out twice. Existing issues are numbered in the order they were made, and each
list's counter starts after its last issue.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

issues = sa.table(
    "issues", sa.column("id", sa.BigInteger), sa.column("list_id", sa.String),
    sa.column("number", sa.Integer),
)
issue_numbers = sa.table(
    "issue_numbers", sa.column("list_id", sa.String), sa.column("last_number", sa.Integer)
)


def upgrade() -> None:
    op.add_column("issues", sa.Column("number", sa.Integer(), nullable=True))
    op.create_table(
        "issue_numbers",
        sa.Column("list_id", sa.String(length=100), nullable=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("list_id", name=op.f("pk_issue_numbers")),
    )
    earlier = issues.alias("earlier")
    position = (
        sa.select(sa.func.count())
        .select_from(earlier)
        .where(earlier.c.list_id == issues.c.list_id, earlier.c.id <= issues.c.id)
        .scalar_subquery()
    )
    op.execute(issues.update().values(number=position))
    op.execute(
        issue_numbers.insert().from_select(
            ["list_id", "last_number"],
            sa.select(issues.c.list_id, sa.func.max(issues.c.number)).group_by(issues.c.list_id),
        )
    )
    op.create_index("ix_issues_list_number", "issues", ["list_id", "number"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_issues_list_number", table_name="issues")
    op.drop_table("issue_numbers")
    with op.batch_alter_table("issues") as batch:
        batch.drop_column("number")
