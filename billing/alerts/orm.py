"""Tables of usage alerts: thresholds, their crossings (one per threshold and month), the checker's memory.

On the shared ``MetaData`` of ``kernel.db`` like every table. ``threshold_crossing`` is
append-only and its unique (threshold, month) is what makes a crossing fire once a month: the
checker inserts the row and the webhook event in one transaction, and a second insert for the
same month does nothing. ``alert_check`` remembers the usage each account's month was last
checked at, so a check skips accounts whose usage has not changed.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from billing.orm import ID, MoneyText
from kernel.db import Base, BigId, UtcDateTime


class UsageThreshold(Base):
    """A threshold an account set on one measure of its month; removed ones are kept for their crossings."""

    __tablename__ = "usage_threshold"
    __table_args__ = (Index("ix_usage_threshold_account_id", "account_id"),)

    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("account.id"))
    measure: Mapped[str] = mapped_column(String(20))  # a billing.domain.alerts.Measure value
    limit_value: Mapped[Decimal] = mapped_column(MoneyText)  # money, a count or GB: exact decimal text
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(ID))
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ThresholdCrossing(Base):
    """Append-only: a threshold reached in a month, with the value seen and the webhook event it sent."""

    __tablename__ = "threshold_crossing"
    __table_args__ = (
        UniqueConstraint("threshold_id", "month"),
        Index("ix_threshold_crossing_account_month", "account_id", "month"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    threshold_id: Mapped[str] = mapped_column(ForeignKey("usage_threshold.id"))
    account_id: Mapped[str] = mapped_column(ForeignKey("account.id"))
    month: Mapped[str] = mapped_column(String(7))
    measure: Mapped[str] = mapped_column(String(20))
    limit_value: Mapped[Decimal] = mapped_column(MoneyText)
    value: Mapped[Decimal] = mapped_column(MoneyText)
    currency: Mapped[str | None] = mapped_column(String(3))  # the statement's, for money measures
    crossed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AlertCheck(Base):
    """The usage an account's month was last checked at (minutes, messages, bytes out)."""

    __tablename__ = "alert_check"

    account_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    connection_minutes: Mapped[int] = mapped_column(BigInteger)
    messages: Mapped[int] = mapped_column(BigInteger)
    bytes_out: Mapped[int] = mapped_column(BigInteger)
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime)
