"""console_session: the console's one-time sign-in links and browser sessions; statements by month

The month's statements page reads one month of every account: an index on (month, account_id)
that also carries status, number and the two instants (PostgreSQL: INCLUDE) answers it without
reading the statements' bodies.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 19:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import kernel.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "console_session",
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("token_id", sa.String(length=64), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", kernel.db.UtcDateTime(), nullable=False),
        sa.Column("expires_at", kernel.db.UtcDateTime(), nullable=False),
        sa.Column("ended_at", kernel.db.UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("secret_hash", name=op.f("pk_console_session")),
    )
    with op.batch_alter_table("console_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_console_session_token_id"), ["token_id"], unique=False)
    with op.batch_alter_table("statement", schema=None) as batch_op:
        batch_op.create_index(
            "ix_statement_month_account",
            ["month", "account_id"],
            unique=False,
            postgresql_include=["status", "number", "generated_at", "finalized_at"],
        )


def downgrade() -> None:
    with op.batch_alter_table("statement", schema=None) as batch_op:
        batch_op.drop_index("ix_statement_month_account")
    with op.batch_alter_table("console_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_console_session_token_id"))
    op.drop_table("console_session")
