"""fold state: pending connection events and running session state

Replaces dirty-connection marks with a queue of the events still to fold, and keeps on
each session the state a fold needs. Sessions computed before this revision lack that
state, so they are dropped and every stored connection event is queued again: the next
rollup pass recomputes them from their raw events (usage does not change).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 02:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATE = (
    ("first_seen_us", sa.BigInteger(), False),
    ("open_us", sa.BigInteger(), True),
    ("open_event_id", sa.String(length=256), True),
    ("open_source", sa.String(length=256), True),
    ("close_us", sa.BigInteger(), True),
    ("report_time_us", sa.BigInteger(), True),
    ("report_event_id", sa.String(length=256), True),
    ("report_source", sa.String(length=256), True),
    ("report_bytes_out", sa.BigInteger(), True),
)


QUEUED = (
    "raw_event_id, account_id, service_id, connection_id, type, time_us, event_id, source, bytes_out, transport"
)


def upgrade() -> None:
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
    # Sessions and their per-day rows are rebuilt from the raw events by the next pass.
    op.execute("UPDATE usage_daily SET connection_minutes = 0, bytes_out = 0")
    op.execute("DELETE FROM connection_day")
    op.execute("DELETE FROM connection_session")
    op.execute(
        f"INSERT INTO pending_connection_event ({QUEUED}) "
        f"SELECT id, {QUEUED.removeprefix('raw_event_id, ')} FROM raw_event WHERE connection_id IS NOT NULL"
    )
    with op.batch_alter_table("connection_session") as batch:
        for name, kind, nullable in STATE:
            batch.add_column(sa.Column(name, kind, nullable=nullable))
    with op.batch_alter_table("dirty_connection") as batch:
        batch.drop_index(batch.f("ix_dirty_connection_first_mark"))
    op.drop_table("dirty_connection")


def downgrade() -> None:
    op.create_table(
        "dirty_connection",
        sa.Column("account_id", sa.String(length=256), nullable=False),
        sa.Column("service_id", sa.String(length=256), nullable=False),
        sa.Column("connection_id", sa.String(length=256), nullable=False),
        sa.Column("first_mark", sa.BigInteger(), nullable=False),
        sa.Column("last_mark", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "service_id", "connection_id", name=op.f("pk_dirty_connection")),
    )
    with op.batch_alter_table("dirty_connection") as batch:
        batch.create_index(batch.f("ix_dirty_connection_first_mark"), ["first_mark"], unique=False)
    # Every connection with an event still to fold becomes dirty again (first and last mark: its id).
    op.execute(
        "INSERT INTO dirty_connection (account_id, service_id, connection_id, first_mark, last_mark) "
        "SELECT e.account_id, e.service_id, e.connection_id, min(e.id), max(e.id) FROM raw_event e "
        "JOIN pending_connection_event p ON p.raw_event_id = e.id "
        "GROUP BY e.account_id, e.service_id, e.connection_id"
    )
    with op.batch_alter_table("connection_session") as batch:
        for name, _, _ in reversed(STATE):
            batch.drop_column(name)
    op.drop_table("pending_connection_event")
