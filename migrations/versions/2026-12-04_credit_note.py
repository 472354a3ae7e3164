"""credit_note: credit notes issued against finalized statements (append-only)

Each row is one credit note as issued: its number (the credit-note sequence of number_sequence),
the statement it credits, its total and its JSON body (lines, reason, content hash).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 20:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import billing.orm
import kernel.db

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "credit_note",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("statement_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("total", billing.orm.MoneyText(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("issued_at", kernel.db.UtcDateTime(), nullable=False),
        sa.Column("issued_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"], name=op.f("fk_credit_note_account_id_account")),
        sa.ForeignKeyConstraint(["statement_id"], ["statement.id"], name=op.f("fk_credit_note_statement_id_statement")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_note")),
        sa.UniqueConstraint("number", name=op.f("uq_credit_note_number")),
    )
    with op.batch_alter_table("credit_note", schema=None) as batch_op:
        batch_op.create_index("ix_credit_note_account_month", ["account_id", "month"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("credit_note", schema=None) as batch_op:
        batch_op.drop_index("ix_credit_note_account_month")
    op.drop_table("credit_note")
