"""usage_month_revision and statement.usage_revisions: drafts skip finalized months whose usage is unchanged

Every write into ``usage_daily`` bumps its (account, month) revision in the same transaction; a
statement records the revision of each month it checked, so a later draft reads the usage of a
finalized month only when its revision moved (docs/decisions.md, "Drafts and history"). Existing
usage starts at revision 1; existing statements record none, so their months are read in full
once, as before.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage_month_revision",
        sa.Column("account_id", sa.String(length=256), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "month"),
    )
    month_of = "to_char(day, 'YYYY-MM')" if op.get_bind().dialect.name == "postgresql" else "strftime('%Y-%m', day)"
    op.execute(
        f"INSERT INTO usage_month_revision (account_id, month, revision) "
        f"SELECT account_id, {month_of}, 1 FROM usage_daily GROUP BY account_id, {month_of}"
    )
    with op.batch_alter_table("statement") as batch:
        batch.add_column(sa.Column("usage_revisions", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("statement") as batch:
        batch.drop_column("usage_revisions")
    op.drop_table("usage_month_revision")
