"""usage_alerts: usage thresholds, their crossings (one per threshold and month), the checker's memory

``threshold_crossing``'s unique (threshold_id, month) is what makes a threshold fire once a
month; ``alert_check`` holds the usage each account's month was last checked at.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import billing.orm
import kernel.db

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage_threshold",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("measure", sa.String(length=20), nullable=False),
        sa.Column("limit_value", billing.orm.MoneyText(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", kernel.db.UtcDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("removed_at", kernel.db.UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"], name=op.f("fk_usage_threshold_account_id_account")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_threshold")),
    )
    with op.batch_alter_table("usage_threshold", schema=None) as batch_op:
        batch_op.create_index("ix_usage_threshold_account_id", ["account_id"], unique=False)
    op.create_table(
        "threshold_crossing",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("threshold_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("measure", sa.String(length=20), nullable=False),
        sa.Column("limit_value", billing.orm.MoneyText(), nullable=False),
        sa.Column("value", billing.orm.MoneyText(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("crossed_at", kernel.db.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"], name=op.f("fk_threshold_crossing_account_id_account")),
        sa.ForeignKeyConstraint(
            ["threshold_id"], ["usage_threshold.id"], name=op.f("fk_threshold_crossing_threshold_id_usage_threshold")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_threshold_crossing")),
        sa.UniqueConstraint("threshold_id", "month", name=op.f("uq_threshold_crossing_threshold_id_month")),
    )
    with op.batch_alter_table("threshold_crossing", schema=None) as batch_op:
        batch_op.create_index("ix_threshold_crossing_account_month", ["account_id", "month"], unique=False)
    op.create_table(
        "alert_check",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("connection_minutes", sa.BigInteger(), nullable=False),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), nullable=False),
        sa.Column("checked_at", kernel.db.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "month", name=op.f("pk_alert_check")),
    )


def downgrade() -> None:
    op.drop_table("alert_check")
    with op.batch_alter_table("threshold_crossing", schema=None) as batch_op:
        batch_op.drop_index("ix_threshold_crossing_account_month")
    op.drop_table("threshold_crossing")
    with op.batch_alter_table("usage_threshold", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_threshold_account_id")
    op.drop_table("usage_threshold")
