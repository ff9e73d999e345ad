"""readers: sign-up requests, the sign-up journal, form limits and one-off messages

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 09:30:00.000000

- ``signup_requests``: one pending or confirmed request per list and address, with the nonce
  its confirmation link carries;
- ``signup_journal``: confirmed sign-ups and readers' own changes in order; every host copies
  it into its own sign-up files;
- ``reader_limits``: fixed-window counters of the public forms, shared by every process;
- ``mail_outbox``: confirmations and welcomes, rendered when queued, sent by whoever claims them.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _when(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "signup_requests",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("list_id", sa.String(100), nullable=False),
        sa.Column("email_key", sa.String(320), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False),
        _when("requested_at"),
        _when("last_sent_at", nullable=True),
        _when("confirmed_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signup_requests")),
        sa.UniqueConstraint("list_id", "email_key", name="uq_signup_requests_list_email"),
    )
    op.create_table(
        "signup_journal",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("list_id", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("email_key", sa.String(320), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        _when("at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signup_journal")),
    )
    op.create_index("ix_signup_journal_list_id", "signup_journal", ["list_id", "id"])
    op.create_table(
        "reader_limits",
        sa.Column("key", sa.String(400), nullable=False),
        _when("window_start"),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_reader_limits")),
    )
    op.create_table(
        "mail_outbox",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("list_id", sa.String(100), nullable=False),
        sa.Column("to_email", sa.String(320), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _when("queued_at"),
        _when("due_at"),
        _when("sent_at", nullable=True),
        sa.Column("provider_message_id", sa.String(300), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_outbox")),
    )
    op.create_index("ix_mail_outbox_status_due", "mail_outbox", ["status", "due_at"])


def downgrade() -> None:
    op.drop_table("mail_outbox")
    op.drop_table("reader_limits")
    op.drop_index("ix_signup_journal_list_id", table_name="signup_journal")
    op.drop_table("signup_journal")
    op.drop_table("signup_requests")
