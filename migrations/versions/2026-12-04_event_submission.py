"""event_submission: which ingest token sent each batch of POST /v1/events

Only the token that sent a batch (and the platform admin) reads its status; an id with no row
answers 404.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import kernel.db

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_submission",
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("token_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", kernel.db.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_event_submission")),
    )


def downgrade() -> None:
    op.drop_table("event_submission")
