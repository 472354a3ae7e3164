"""Usage per account, service and UTC day, and the monthly usage report.

``daily_usage`` is the plain-Python reference of the whole metering rule set; the
vectorised rollup in ``metering/rollups.py`` is property-tested against it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from kernel.instants import Month, day_of
from metering.domain.bandwidth import byte_increments, byte_reports
from metering.domain.events import EventType, MeteringEvent
from metering.domain.minutes import minutes_by_day
from metering.domain.sessions import ConnectionKey, distinct_events, group_connections, session_of

UsageKey = tuple[str, str, date]  # account_id, service_id, UTC day


@dataclass(frozen=True, slots=True)
class DailyUsage:
    account_id: str
    service_id: str
    day: date
    connection_minutes: int = 0
    messages_published: int = 0
    messages_delivered: int = 0
    bytes_out: int = 0


@dataclass(frozen=True, slots=True)
class ConnectionDay:
    """One connection's contribution to one UTC day: minutes that began that day, bytes reported."""

    key: ConnectionKey
    day: date
    connection_minutes: int = 0
    bytes_out: int = 0


def connection_days(key: ConnectionKey, events: list[MeteringEvent]) -> list[ConnectionDay]:
    """Split one connection's rounded minutes and counted bytes over UTC days."""
    session = session_of(key, events)
    minutes = minutes_by_day(session.start_us, session.billable_minutes)
    bytes_by_day: dict[date, int] = defaultdict(int)
    for time_us, increase in byte_increments(byte_reports(events)):
        bytes_by_day[day_of(time_us)] += increase
    days = sorted(set(minutes) | {d for d, b in bytes_by_day.items() if b})
    return [ConnectionDay(key, d, minutes.get(d, 0), bytes_by_day.get(d, 0)) for d in days]


def daily_usage(events: Iterable[MeteringEvent]) -> dict[UsageKey, DailyUsage]:
    """Compute usage per (account, service, day) from a set of events: the reference rule set."""
    distinct = distinct_events(events)
    totals: dict[UsageKey, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for key, group in group_connections(distinct).items():
        for part in connection_days(key, group):
            row = totals[(key.account_id, key.service_id, part.day)]
            row["connection_minutes"] += part.connection_minutes
            row["bytes_out"] += part.bytes_out
    for event in distinct:
        if event.type is EventType.MESSAGE_PUBLISHED:
            totals[(event.account_id, event.service_id, day_of(event.time_us))]["messages_published"] += (
                event.count or 0
            )
        elif event.type is EventType.MESSAGE_DELIVERED:
            totals[(event.account_id, event.service_id, day_of(event.time_us))]["messages_delivered"] += (
                event.count or 0
            )
    return {(a, s, d): DailyUsage(a, s, d, **values) for (a, s, d), values in totals.items()}


@dataclass(frozen=True, slots=True)
class ServiceUsage:
    service_id: str
    connection_minutes: int = 0
    messages_published: int = 0
    messages_delivered: int = 0
    bytes_out: int = 0

    @property
    def messages(self) -> int:
        """Billable messages: published-in plus delivered-out."""
        return self.messages_published + self.messages_delivered


@dataclass(frozen=True, slots=True)
class UsageReport:
    """An account's usage for one UTC month, per service (DESIGN.md "Usage JSON")."""

    account_id: str
    month: Month
    services: tuple[ServiceUsage, ...] = field(default=())

    @property
    def connection_minutes(self) -> int:
        return sum(s.connection_minutes for s in self.services)

    @property
    def messages_published(self) -> int:
        return sum(s.messages_published for s in self.services)

    @property
    def messages_delivered(self) -> int:
        return sum(s.messages_delivered for s in self.services)

    @property
    def messages(self) -> int:
        return self.messages_published + self.messages_delivered

    @property
    def bytes_out(self) -> int:
        return sum(s.bytes_out for s in self.services)

    def to_json(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "month": str(self.month),
            "connection_minutes": self.connection_minutes,
            "messages": self.messages,
            "messages_published": self.messages_published,
            "messages_delivered": self.messages_delivered,
            "bytes_out": self.bytes_out,
            "services": [
                {
                    "service_id": s.service_id,
                    "connection_minutes": s.connection_minutes,
                    "messages_published": s.messages_published,
                    "messages_delivered": s.messages_delivered,
                    "bytes_out": s.bytes_out,
                }
                for s in self.services
            ],
        }


def usage_report(account_id: str, month: Month, rows: Iterable[DailyUsage]) -> UsageReport:
    """Sum an account's daily rows that fall in ``month`` into a report, services sorted by id."""
    per_service: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for row in rows:
        if row.account_id != account_id or Month.of_day(row.day) != month:
            continue
        sums = per_service[row.service_id]
        sums[0] += row.connection_minutes
        sums[1] += row.messages_published
        sums[2] += row.messages_delivered
        sums[3] += row.bytes_out
    services = tuple(ServiceUsage(sid, *per_service[sid]) for sid in sorted(per_service))
    return UsageReport(account_id, month, services)
