"""pending batch: queue a batch's connection events with one row, not one row an event

The rollup's work queue becomes one row per batch (its raw_event id range); a pass reads the
batch's connection events from raw_event. Events already queued keep waiting: a pass takes
the oldest queued events first and a batch's events commit together, so what is still queued
of a batch is the top of its id range, and the batch's row covers exactly that.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 04:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUEUED = (
    "raw_event_id, account_id, service_id, connection_id, type, time_us, event_id, source, bytes_out, transport"
)


def upgrade() -> None:
    op.create_table(
        "pending_batch",
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("low_event_id", sa.BigInteger(), nullable=False),
        sa.Column("high_event_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_pending_batch")),
    )
    op.execute(
        "INSERT INTO pending_batch (batch_id, low_event_id, high_event_id) "
        "SELECT e.batch_id, min(e.id), max(e.id) FROM pending_connection_event p "
        "JOIN raw_event e ON e.id = p.raw_event_id GROUP BY e.batch_id"
    )
    op.drop_table("pending_connection_event")


def downgrade() -> None:
    op.create_table(
        "pending_connection_event",
        sa.Column("raw_event_id", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.String(length=256), nullable=False),
        sa.Column("service_id", sa.String(length=256), nullable=False),
        sa.Column("connection_id", sa.String(length=256), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("time_us", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=256), nullable=False),
        sa.Column("source", sa.String(length=256), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), nullable=True),
        sa.Column("transport", sa.String(length=20), nullable=True),
        sa.PrimaryKeyConstraint("raw_event_id", name=op.f("pk_pending_connection_event")),
    )
    op.execute(
        f"INSERT INTO pending_connection_event ({QUEUED}) "
        f"SELECT e.id, {', '.join('e.' + c for c in QUEUED.split(', ')[1:])} FROM pending_batch b "
        "JOIN raw_event e ON e.batch_id = b.batch_id AND e.id BETWEEN b.low_event_id AND b.high_event_id "
        "WHERE e.connection_id IS NOT NULL"
    )
    op.drop_table("pending_batch")
