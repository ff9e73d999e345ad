"""the desk: accounts, server-side sessions, sign-in throttling, and who made each change

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 04:00:00.000000

``desk_users`` holds each account's name, role and argon2id hash; ``desk_sessions`` the
SHA-256 of each signed-in browser's session id with its CSRF token; ``desk_throttle`` the
failed sign-ins per account and per client address, shared by every process.
``issue_events.actor`` names who made a change (empty on rows written before).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "issue_events",
        sa.Column("actor", sa.String(100), nullable=False, server_default=""),
    )
    op.create_table(
        "desk_users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_desk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_desk_users_name")),
    )
    op.create_table(
        "desk_sessions",
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["desk_users.id"],
            name=op.f("fk_desk_sessions_user_id_desk_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_desk_sessions")),
    )
    op.create_index(
        op.f("ix_desk_sessions_user_id"), "desk_sessions", ["user_id"], unique=False
    )
    op.create_table(
        "desk_throttle",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_desk_throttle")),
    )


def downgrade() -> None:
    op.drop_table("desk_throttle")
    op.drop_index(op.f("ix_desk_sessions_user_id"), table_name="desk_sessions")
    op.drop_table("desk_sessions")
    op.drop_table("desk_users")
    with op.batch_alter_table("issue_events") as table:
        table.drop_column("actor")
