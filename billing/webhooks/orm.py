"""Tables of webhooks: endpoints, the outbox of events, one delivery per (endpoint, event), attempts.

On the one ``MetaData`` of ``kernel.db``. An event row is written by ``outbox.record_event`` in
the transaction of the change it reports, with one ``webhook_delivery`` row per endpoint that
wanted it, so an event is never lost nor sent for a change that rolled back. Events and attempts
are append-only; a delivery's state moves (pending -> delivered | failed, and back on redeliver).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db import Base, BigId, UtcDateTime

ID = 64


class WebhookEndpoint(Base):
    """A URL that receives the event types it asked for: one account's, or every account's.

    ``account_id`` None is a platform-wide endpoint (registered by admin or finance): it receives
    every account's events and the platform-wide ones. ``secret`` is the Standard Webhooks
    signing secret (``whsec_`` + base64), kept in clear because signing needs it.
    ``lease_until`` lets one delivery run at a time own the endpoint, so its events go in order.
    """

    __tablename__ = "webhook_endpoint"

    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    account_id: Mapped[str | None] = mapped_column(String(ID), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    event_types: Mapped[list[str]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(String(200))
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(ID))
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)


class WebhookEvent(Base):
    """One event as it happened (append-only): ``id`` is the ``webhook-id`` receivers dedupe on."""

    __tablename__ = "webhook_event"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(ID), unique=True)
    type: Mapped[str] = mapped_column(String(60))
    account_id: Mapped[str | None] = mapped_column(String(ID))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class WebhookDelivery(Base):
    """The sending of one event to one endpoint: its state, attempts so far and next attempt.

    ``status`` is ``pending`` (due at ``next_attempt_at``), ``delivered`` or ``failed`` (given up
    after a day; the endpoint was disabled). ``failing_since`` is the first failed attempt of the
    current series: a redeliver starts a new series.
    """

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_seq"),
        Index("ix_webhook_delivery_endpoint_status_seq", "endpoint_id", "status", "event_seq"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoint.id"))
    event_seq: Mapped[int] = mapped_column(ForeignKey("webhook_event.seq"))
    status: Mapped[str] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(Integer)
    failures: Mapped[int] = mapped_column(Integer, default=0)  # consecutive, of the current series
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    failing_since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_response_code: Mapped[int | None] = mapped_column(Integer)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class WebhookAttempt(Base):
    """One HTTP attempt of a delivery (append-only): when, the answer's code or the error."""

    __tablename__ = "webhook_attempt"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_delivery.id"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    response_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)
