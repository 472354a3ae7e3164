"""Tables of the metering pipeline: raw events, rejections, batches, sessions, rollups.

Hot columns hold instants as integer UTC microseconds (``*_us``) because the
pipeline computes on them; human-facing instants (``*_at``) use ``UtcDateTime``.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db import Base, BigId, UtcDateTime

ID = 256  # longest account, service, connection, source or event id the contract allows


class RawEvent(Base):
    """Every accepted event, once: the unique (source, event_id) is the dedup claim."""

    __tablename__ = "raw_event"
    __table_args__ = (
        UniqueConstraint("source", "event_id"),
        # Only connection events are looked up by connection (a rollup recomputing one); message
        # events stay out of the index, which makes every insert cheaper (migration 0015).
        Index(
            "ix_raw_event_connection",
            "account_id",
            "service_id",
            "connection_id",
            postgresql_where=text("connection_id IS NOT NULL"),
            sqlite_where=text("connection_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(ID))
    event_id: Mapped[str] = mapped_column(String(ID))
    type: Mapped[str] = mapped_column(String(40))
    time_us: Mapped[int] = mapped_column(BigInteger)
    account_id: Mapped[str] = mapped_column(String(ID))
    service_id: Mapped[str] = mapped_column(String(ID))
    connection_id: Mapped[str | None] = mapped_column(String(ID))
    transport: Mapped[str | None] = mapped_column(String(20))
    channel: Mapped[str | None] = mapped_column(String(ID))
    count: Mapped[int | None] = mapped_column(BigInteger)
    bytes_out: Mapped[int | None] = mapped_column(BigInteger)
    bytes_in: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(String(ID))
    batch_id: Mapped[str] = mapped_column(String(64))


class RejectedEvent(Base):
    """An event that broke the contract, kept with its reason for operators."""

    __tablename__ = "rejected_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(String(64), index=True)
    source: Mapped[str | None] = mapped_column(String(ID))
    event_id: Mapped[str | None] = mapped_column(String(ID))
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    rejected_at: Mapped[datetime] = mapped_column(UtcDateTime)


class IngestBatch(Base):
    """One ingested batch; its row makes a redelivered batch a no-op."""

    __tablename__ = "ingest_batch"

    batch_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    accepted: Mapped[int] = mapped_column(Integer)
    duplicates: Mapped[int] = mapped_column(Integer)
    rejected: Mapped[int] = mapped_column(Integer)
    # Highest raw_event.id this batch wrote: rollups are done for the batch once no
    # pending connection event at or below it is left.
    max_event_id: Mapped[int] = mapped_column(BigInteger)
    ingested_at: Mapped[datetime] = mapped_column(UtcDateTime)


class PendingBatch(Base):
    """A batch whose connection events are not yet folded into their sessions: the rollup's work queue.

    Ingest adds the row in the same transaction as the batch's events; a rollup pass folds the
    connection events of the batches it claims and deletes exactly those rows, so an event is
    folded once, however passes interleave. One row a batch, not one an event: a pass reads the
    events from raw_event by the batch's id range, and ingest no longer copies every connection
    event into a queue that is deleted again moments later (bench/ingest.py: ~4 µs of database
    time an event).
    """

    __tablename__ = "pending_batch"

    batch_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The lowest and highest raw_event.id the batch stored; other batches' ids may interleave.
    low_event_id: Mapped[int] = mapped_column(BigInteger)
    high_event_id: Mapped[int] = mapped_column(BigInteger)


class RollupRequest(Base):
    """One row: whether a rollup pass has been asked for since the last one started.

    Ingest raises the flag and sends a rollup task only when it was down, so a thousand
    batches ask for a handful of passes, not a thousand.
    """

    __tablename__ = "rollup_request"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    requested: Mapped[bool] = mapped_column(Boolean)


class ConnectionSession(Base):
    """A connection's start and end as the metering rules define them, and what folding needs.

    The ``open_*``, ``close_us``, ``first_seen_us`` and ``report_*`` columns are the running
    state that lets a rollup fold in new events without re-reading the connection's history.
    """

    __tablename__ = "connection_session"

    account_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    service_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    connection_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    transport: Mapped[str | None] = mapped_column(String(20))
    start_us: Mapped[int] = mapped_column(BigInteger)
    end_us: Mapped[int] = mapped_column(BigInteger)
    last_seen_us: Mapped[int] = mapped_column(BigInteger)
    closed: Mapped[bool] = mapped_column(Boolean)
    billable_minutes: Mapped[int] = mapped_column(BigInteger)
    first_seen_us: Mapped[int] = mapped_column(BigInteger)
    open_us: Mapped[int | None] = mapped_column(BigInteger)
    open_event_id: Mapped[str | None] = mapped_column(String(ID))
    open_source: Mapped[str | None] = mapped_column(String(ID))
    close_us: Mapped[int | None] = mapped_column(BigInteger)
    # The last counter report by (time, id, source): the next report's increase starts from it.
    report_time_us: Mapped[int | None] = mapped_column(BigInteger)
    report_event_id: Mapped[str | None] = mapped_column(String(ID))
    report_source: Mapped[str | None] = mapped_column(String(ID))
    report_bytes_out: Mapped[int | None] = mapped_column(BigInteger)


class ConnectionDay(Base):
    """One connection's minutes (by minute start) and bytes out on one UTC day."""

    __tablename__ = "connection_day"

    account_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    service_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    connection_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    connection_minutes: Mapped[int] = mapped_column(BigInteger)
    bytes_out: Mapped[int] = mapped_column(BigInteger)


class UsageDaily(Base):
    """The rollup: usage per account, service and UTC day."""

    __tablename__ = "usage_daily"
    # A month of one account across its services: the usage API's and statements' read.
    __table_args__ = (Index("ix_usage_daily_account_day", "account_id", "day"),)

    account_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    service_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    connection_minutes: Mapped[int] = mapped_column(BigInteger, default=0)
    messages_published: Mapped[int] = mapped_column(BigInteger, default=0)
    messages_delivered: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_out: Mapped[int] = mapped_column(BigInteger, default=0)


class UsageMonthRevision(Base):
    """A counter per account and month that every write into ``usage_daily`` raises (migration 0016).

    Statements record the revision they read a month's usage at; a later draft reads a finalized
    month's usage again only when its revision moved, so drafts do not slow with history.
    """

    __tablename__ = "usage_month_revision"

    account_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # YYYY-MM
    revision: Mapped[int] = mapped_column(BigInteger)
