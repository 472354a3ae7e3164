"""usage_daily index on (account_id, day)

A month of one account, across its services, is the usage API's read: the primary key
(account_id, service_id, day) made PostgreSQL visit every day of every service of the account.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 05:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("usage_daily", schema=None) as batch_op:
        batch_op.create_index("ix_usage_daily_account_day", ["account_id", "day"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("usage_daily", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_daily_account_day")
