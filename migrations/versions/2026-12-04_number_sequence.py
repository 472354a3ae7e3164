"""number_sequence: gapless statement and credit-note numbers that never reset within a year

One counter row per (sequence, period), the period being the UTC year of issue (0: never reset).
Existing numbers (FM-YYYY-MM-NNNNNN) never change; the counters are seeded from the finalized
statements, so the year's next statement continues the year's count: with 5 statements finalized
in 2026 before this revision, the next one is FM-2026-000006.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 20:20:00
"""

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def upgrade() -> None:
    counters = op.create_table(
        "number_sequence",
        sa.Column("sequence", sa.String(length=20), nullable=False),
        sa.Column("period", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("sequence", "period", name=op.f("pk_number_sequence")),
    )
    finalized = op.get_bind().execute(
        sa.text("SELECT finalized_at FROM statement WHERE status = 'finalized' AND finalized_at IS NOT NULL")
    )
    years = Counter((_EPOCH + timedelta(microseconds=at)).year for (at,) in finalized)
    rows = [{"sequence": "statement", "period": year, "last_value": count} for year, count in sorted(years.items())]
    if years:  # the never-reset sequence (period 0) continues the all-time count
        rows.append({"sequence": "statement", "period": 0, "last_value": sum(years.values())})
        op.bulk_insert(counters, rows)


def downgrade() -> None:
    op.drop_table("number_sequence")
