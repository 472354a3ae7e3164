"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28 01:46:04.537604
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import kernel.db


revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "connection_day",
        sa.Column("account_id", sa.String(length=256), nullable=False),
        sa.Column("service_id", sa.String(length=256), nullable=False),
        sa.Column("connection_id", sa.String(length=256), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("connection_minutes", sa.BigInteger(), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "account_id", "service_id", "connection_id", "day", name=op.f("pk_connection_day")
        ),
    )
    op.create_table(
        "connection_session",
        sa.Column("account_id", sa.String(length=256), nullable=False),
        sa.Column("service_id", sa.String(length=256), nullable=False),
        sa.Column("connection_id", sa.String(length=256), nullable=False),
        sa.Column("transport", sa.String(length=20), nullable=True),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_us", sa.BigInteger(), nullable=False),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.Column("billable_minutes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "account_id", "service_id", "connection_id", name=op.f("pk_connection_session")
        ),
    )
    op.create_table(
        "dirty_connection",
        sa.Column("account_id", sa.String(length=256), nullable=False),
        sa.Column("service_id", sa.String(length=256), nullable=False),
        sa.Column("connection_id", sa.String(length=256), nullable=False),
        sa.Column("first_mark", sa.BigInteger(), nullable=False),
        sa.Column("last_mark", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "account_id", "service_id", "connection_id", name=op.f("pk_dirty_connection")
        ),
    )
    with op.batch_alter_table("dirty_connection", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dirty_connection_first_mark"), ["first_mark"], unique=False)

    op.create_table(
        "ingest_batch",
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("max_event_id", sa.BigInteger(), nullable=False),
        sa.Column("ingested_at", kernel.db.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_ingest_batch")),
    )
    op.create_table(
        "raw_event",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("source", sa.String(length=256), nullable=False),
        sa.Column("event_id", sa.String(length=256), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("time_us", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.String(length=256), nullable=False),
        sa.Column("service_id", sa.String(length=256), nullable=False),
        sa.Column("connection_id", sa.String(length=256), nullable=True),
        sa.Column("transport", sa.String(length=20), nullable=True),
        sa.Column("channel", sa.String(length=256), nullable=True),
        sa.Column("count", sa.BigInteger(), nullable=True),
        sa.Column("bytes_out", sa.BigInteger(), nullable=True),
        sa.Column("bytes_in", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.String(length=256), nullable=True),
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_raw_event")),
        sa.UniqueConstraint("source", "event_id", name=op.f("uq_raw_event_source_event_id")),
    )
    with op.batch_alter_table("raw_event", schema=None) as batch_op:
        batch_op.create_index(
            "ix_raw_event_connection", ["account_id", "service_id", "connection_id"], unique=False
        )

    op.create_table(
        "rejected_event",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=256), nullable=True),
        sa.Column("event_id", sa.String(length=256), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("rejected_at", kernel.db.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejected_event")),
    )
    with op.batch_alter_table("rejected_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rejected_event_batch_id"), ["batch_id"], unique=False)

    op.create_table(
        "usage_daily",
        sa.Column("account_id", sa.String(length=256), nullable=False),
        sa.Column("service_id", sa.String(length=256), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("connection_minutes", sa.BigInteger(), nullable=False),
        sa.Column("messages_published", sa.BigInteger(), nullable=False),
        sa.Column("messages_delivered", sa.BigInteger(), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "service_id", "day", name=op.f("pk_usage_daily")),
    )


def downgrade() -> None:

    op.drop_table("usage_daily")
    with op.batch_alter_table("rejected_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rejected_event_batch_id"))

    op.drop_table("rejected_event")
    with op.batch_alter_table("raw_event", schema=None) as batch_op:
        batch_op.drop_index("ix_raw_event_connection")

    op.drop_table("raw_event")
    op.drop_table("ingest_batch")
    with op.batch_alter_table("dirty_connection", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dirty_connection_first_mark"))

    op.drop_table("dirty_connection")
    op.drop_table("connection_session")
    op.drop_table("connection_day")
