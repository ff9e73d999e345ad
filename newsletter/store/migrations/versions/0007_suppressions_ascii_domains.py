"""suppressions of internationalised domains in their ASCII form

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 20:00:00.000000

Addresses are now kept with an internationalised domain in its ASCII (IDNA) form, as the
member lists and the ledger hold them, so a suppression entered before with a Unicode
domain is rewritten to that form and goes on matching. Where the ASCII form is suppressed
already for the same scope, the older spelling is dropped. An address with characters
outside ASCII before the @ is left as it was: such an address is now refused in a list.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from email_validator import EmailNotValidError, validate_email

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

suppressions = sa.table(
    "suppressions", sa.column("email", sa.String), sa.column("scope", sa.String)
)


def upgrade() -> None:
    conn = op.get_bind()
    found = conn.execute(sa.select(suppressions.c.email, suppressions.c.scope))
    unicode_rows = [(email, scope) for email, scope in found if not email.isascii()]
    for email, scope in unicode_rows:
        ascii_form = _ascii_form(email)
        if ascii_form is None:
            continue
        row = sa.and_(suppressions.c.email == email, suppressions.c.scope == scope)
        if _exists(conn, ascii_form, scope):
            conn.execute(sa.delete(suppressions).where(row))
        else:
            conn.execute(sa.update(suppressions).where(row).values(email=ascii_form))


def downgrade() -> None:
    """Nothing to undo: the ASCII form names the same mailbox."""


def _ascii_form(email: str) -> str | None:
    try:
        valid = validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        return None
    return valid.ascii_email.lower() if valid.ascii_email else None


def _exists(conn: sa.Connection, email: str, scope: str) -> bool:
    same = sa.and_(suppressions.c.email == email, suppressions.c.scope == scope)
    return conn.execute(sa.select(sa.literal(1)).where(same)).first() is not None
