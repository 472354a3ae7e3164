"""Bodies of the usage, events and metrics endpoints (DESIGN.md "Usage JSON": all integers)."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel


class ServiceUsageOut(BaseModel):
    service_id: str
    connection_minutes: int
    messages_published: int
    messages_delivered: int
    bytes_out: int


class UsageOut(BaseModel):
    """An account's usage for a UTC month (month to date while the month runs)."""

    account_id: str
    month: str
    connection_minutes: int
    messages: int
    messages_published: int
    messages_delivered: int
    bytes_out: int
    services: list[ServiceUsageOut]


class DailyUsageOut(ServiceUsageOut):
    day: date


class DailyUsageReportOut(BaseModel):
    """An account's usage per service and UTC day, for one month."""

    account_id: str
    month: str
    days: list[DailyUsageOut]


class EventsAccepted(BaseModel):
    """Events handed to the pipeline; ``GET /v1/events/batches/{batch_id}`` tells how they fared."""

    batch_id: str
    events: int
    messages: int


class BatchStatusOut(BaseModel):
    batch_id: str
    messages: int
    messages_done: int
    accepted: int
    duplicates: int
    rejected: int
    pending_rollup_batches: int
    rejection_reasons: dict[str, int]
    done: bool
