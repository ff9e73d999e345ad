"""index batches by the provider's id for the whole batch

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 06:10:00.000000

Mailgun and SendGrid answer a batch with one message id for all its recipients. It used to
be copied into each recipient's row, which made recording a sent batch rewrite 1,000
entries of ``ix_recipients_message_id`` (a third of the cost of that UPDATE). It is now kept
once, on the batch; webhooks find the recipient through this index and the address.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_batches_provider_batch_id", "batches", ["provider_batch_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_batches_provider_batch_id", table_name="batches")
