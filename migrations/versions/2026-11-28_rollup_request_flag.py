"""rollup request flag

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 02:16:44.406954
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    rollup_request = op.create_table(
        "rollup_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("requested", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_request")),
    )
    # The single row the pipeline raises and lowers; it must exist from the start.
    op.bulk_insert(rollup_request, [{"id": 1, "requested": False}])


def downgrade() -> None:
    op.drop_table("rollup_request")
