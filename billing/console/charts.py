"""Daily usage as plain chart values a template draws as SVG bars (no JavaScript, nothing loaded).

One chart per measure (connection minutes, messages published, messages delivered, bandwidth):
their scales differ by orders of magnitude, so small multiples read better than one shared axis.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from billing.console.filters import day as day_label
from billing.console.filters import gigabytes, number
from kernel.instants import Month
from metering.domain.usage import DailyUsage

WIDTH, HEIGHT, TOP, BASE = 620, 160, 8, 150

MEASURES = (
    ("connection_minutes", "Connection minutes", "min"),
    ("messages_published", "Messages published", ""),
    ("messages_delivered", "Messages delivered", ""),
    ("bytes_out", "Bandwidth out", ""),
)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    label: str


@dataclass(frozen=True)
class Chart:
    title: str
    unit: str
    bars: list[Bar]
    total_text: str
    peak_text: str
    first_label: str
    last_label: str
    summary: str
    width: int = WIDTH
    height: int = HEIGHT
    top: int = TOP
    base: int = BASE


def days_of(month: Month) -> list[date]:
    first, last = month.first_day, month.last_day
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def daily_totals(rows: Iterable[DailyUsage], service_id: str | None = None) -> dict[date, dict[str, int]]:
    """Per day, each measure summed over the account's services (or one service's)."""
    totals: dict[date, dict[str, int]] = defaultdict(lambda: dict.fromkeys((m for m, _, _ in MEASURES), 0))
    for row in rows:
        if service_id is None or row.service_id == service_id:
            for measure, _, _ in MEASURES:
                totals[row.day][measure] += getattr(row, measure)
    return totals


def _text(measure: str, value: int) -> str:
    return gigabytes(value) if measure == "bytes_out" else number(value)


def charts(month: Month, totals: dict[date, dict[str, int]]) -> list[Chart]:
    """The four daily charts of a month."""
    days = days_of(month)
    slot = WIDTH / len(days)
    result = []
    for measure, title, unit in MEASURES:
        values = [totals.get(d, {}).get(measure, 0) for d in days]
        peak = max(values) or 1
        bars = []
        for i, (d, value) in enumerate(zip(days, values, strict=True)):
            h = round((BASE - TOP) * value / peak, 2)
            bars.append(
                Bar(
                    round(i * slot + slot * 0.15, 2),
                    round(BASE - h, 2),
                    round(slot * 0.7, 2),
                    h,
                    f"{day_label(d)}: {_text(measure, value)}",
                )
            )
        busiest = days[values.index(max(values))]
        summary = (
            f"{_text(measure, sum(values))} in the month, most on {day_label(busiest)} ({_text(measure, max(values))})"
        )
        result.append(
            Chart(
                title,
                unit,
                bars,
                _text(measure, sum(values)),
                _text(measure, max(values)),
                day_label(days[0]),
                day_label(days[-1]),
                summary,
            )
        )
    return result
