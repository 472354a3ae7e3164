"""Connection sessions: start and end of each connection from the set of its events.

DESIGN.md "Start and end of a connection": start is the ``open`` event's time, or
without one the earliest time of any of its events; end is the earliest ``close``
time, or without a close the latest time of any event (last seen). The result
depends only on the set of distinct events, never on their order or repetition.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from metering.domain.events import EventType, MeteringEvent
from metering.domain.minutes import billable_minutes

DEFAULT_ALIVE_INTERVAL_US = 60_000_000
DEFAULT_LOST_CLOSE_FACTOR = 3


class ConnectionKey(NamedTuple):
    account_id: str
    service_id: str
    connection_id: str


class SessionStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    LOST = "lost"  # no close and silent too long: closed by the pipeline at its last-seen time


@dataclass(frozen=True, slots=True)
class ConnectionSession:
    """What the pipeline knows of one connection; ``end_us`` is the close or last seen."""

    key: ConnectionKey
    start_us: int
    end_us: int
    last_seen_us: int
    closed: bool
    transport: str | None = None

    @property
    def billable_minutes(self) -> int:
        return billable_minutes(self.end_us - self.start_us)

    def status(self, now_us: int, alive_interval_us: int, lost_close_factor: int) -> SessionStatus:
        """Closed by its own close event, lost when silent for ``factor x alive_interval``, else open.

        Example: last seen 10:00:00, alive interval 60 s, factor 3: open until 10:03:00, lost after.
        A lost connection ends at its last-seen time, so nobody is billed for unseen time.
        """
        if self.closed:
            return SessionStatus.CLOSED
        if now_us - self.last_seen_us > lost_close_factor * alive_interval_us:
            return SessionStatus.LOST
        return SessionStatus.OPEN


def distinct_events(events: Iterable[MeteringEvent]) -> list[MeteringEvent]:
    """Drop repeats of the same (source, id), keeping the first seen."""
    seen: dict[tuple[str, str], MeteringEvent] = {}
    for event in events:
        seen.setdefault(event.key, event)
    return list(seen.values())


def connection_key(event: MeteringEvent) -> ConnectionKey:
    if event.connection_id is None:
        raise ValueError(f"{event.type} is not a connection event")
    return ConnectionKey(event.account_id, event.service_id, event.connection_id)


def group_connections(events: Iterable[MeteringEvent]) -> dict[ConnectionKey, list[MeteringEvent]]:
    """Group the distinct connection events by connection."""
    groups: dict[ConnectionKey, list[MeteringEvent]] = {}
    for event in distinct_events(events):
        if event.type.is_connection:
            groups.setdefault(connection_key(event), []).append(event)
    return groups


def session_of(key: ConnectionKey, events: list[MeteringEvent]) -> ConnectionSession:
    """Build one connection's session from its (distinct) events.

    Example: open 10:00:00, alive 10:01:00, close 10:01:30 -> start 10:00:00, end 10:01:30, 2 minutes.
    Without the close the end is 10:01:00 (last seen) and the bill is 1 minute.
    """
    opens = [e for e in events if e.type is EventType.CONNECTION_OPEN]
    closes = [e.time_us for e in events if e.type is EventType.CONNECTION_CLOSE]
    last_seen = max(e.time_us for e in events)
    first_open = min(opens, key=lambda e: (e.time_us, e.id, e.source)) if opens else None
    start = first_open.time_us if first_open else min(e.time_us for e in events)
    return ConnectionSession(
        key=key,
        start_us=start,
        end_us=min(closes) if closes else last_seen,
        last_seen_us=last_seen,
        closed=bool(closes),
        transport=first_open.transport if first_open else None,
    )


def sessionize(events: Iterable[MeteringEvent]) -> dict[ConnectionKey, ConnectionSession]:
    """Return every connection's session from a set of events (order and repeats do not matter)."""
    return {key: session_of(key, group) for key, group in group_connections(events).items()}
