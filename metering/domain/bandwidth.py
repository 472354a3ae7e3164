"""Bandwidth from cumulative byte counters (DESIGN.md "Bandwidth").

``alive`` and ``close`` report the bytes a connection has carried since it opened.
The increase between consecutive reports, taken in order of (time, id), belongs to
the later report's period; ``open`` counts as a report of 0; a value lower than the
one before is a counter reset, and then the whole new value is the increase. So a
lost report loses nothing (the next one carries it) and a repeated one adds nothing.
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
    """One connection's counter reports: alive and close carry bytes_out, open counts as 0."""
    reports = []
    for event in events:
        if event.type is EventType.CONNECTION_OPEN:
            reports.append(ByteReport(event.time_us, event.id, event.source, 0))
        elif event.type.is_connection and event.bytes_out is not None:
            reports.append(ByteReport(event.time_us, event.id, event.source, event.bytes_out))
    return reports


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
