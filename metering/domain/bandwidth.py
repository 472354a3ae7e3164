"""Bandwidth from cumulative byte counters (DESIGN.md "Bandwidth").

``alive`` and ``close`` report the bytes a connection has carried since it opened.
The increase between consecutive reports, taken in order of (time, id), belongs to
the later report's period; the counter starts at 0 when the connection opens; a value
lower than the one before is a counter reset, and then the whole new value is the
increase. So a lost report loses nothing (the next one carries it) and a repeated one
adds nothing.

"open counts as 0" is read as the counter's starting value, not as a report of its own:
a second open of the same connection, or an open stamped a moment after an alive, must
not look like a counter reset and count the later cumulative value twice
(docs/decisions.md, "Bandwidth baseline").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from metering.domain.events import EventType, MeteringEvent


class ByteReport(NamedTuple):
    time_us: int
    id: str
    source: str
    bytes_out: int


def byte_reports(events: Iterable[MeteringEvent]) -> list[ByteReport]:
    """One connection's counter reports: its alive and close events (the open is the 0 they start from)."""
    return [
        ByteReport(event.time_us, event.id, event.source, event.bytes_out)
        for event in events
        if event.type is not EventType.CONNECTION_OPEN and event.type.is_connection and event.bytes_out is not None
    ]


def byte_increments(reports: Iterable[ByteReport]) -> list[tuple[int, int]]:
    """Return ``(time_us, increase)`` for each report, in (time, id) order.

    Example: reports 100, 250, 40 (a reset), 90 -> increases 100, 150, 40, 50; total 340.
    """
    increments = []
    previous = 0
    for report in sorted(reports):
        value = report.bytes_out
        increments.append((report.time_us, value - previous if value >= previous else value))
        previous = value
    return increments
