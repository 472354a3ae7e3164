"""statement: an index by (month, status, account_id) for the draft build's month-wide reads

The draft build reads statements by month for every account at once (the statuses before a
month, the previous month's finalized statements, the month's own drafts); without it each read
scanned the whole table, bodies and all, which grew with history (docs/decisions.md, "Drafts
and history"). It covers the statuses read, so that one never touches the rows.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 23:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_statement_month_status_account", "statement", ["month", "status", "account_id"])


def downgrade() -> None:
    op.drop_index("ix_statement_month_status_account", table_name="statement")
