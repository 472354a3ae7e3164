"""Instants as integer UTC microseconds, UTC calendar days and months.

All duration arithmetic in fanmeter happens on integers so that no float ever
decides a minute or a cent.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

MICROS_PER_SECOND = 1_000_000
MICROS_PER_MINUTE = 60 * MICROS_PER_SECOND
MICROS_PER_DAY = 86_400 * MICROS_PER_SECOND

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICRO = timedelta(microseconds=1)
_MONTH_PATTERN = re.compile(r"^(\d{4})-(\d{2})$")


def to_micros(instant: datetime) -> int:
    """Return an aware datetime as integer microseconds since the Unix epoch (UTC)."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("naive datetime: fanmeter only handles instants with a time zone")
    return (instant - EPOCH) // _ONE_MICRO


def from_micros(micros: int) -> datetime:
    """Return the aware UTC datetime for integer microseconds since the epoch."""
    return EPOCH + timedelta(microseconds=micros)


def day_of(micros: int) -> date:
    """Return the UTC calendar day an instant falls on."""
    return date.fromordinal(EPOCH.toordinal() + micros // MICROS_PER_DAY)


def day_start(day: date) -> int:
    """Return the first microsecond of a UTC day."""
    return (day.toordinal() - EPOCH.toordinal()) * MICROS_PER_DAY


@dataclass(frozen=True, order=True)
class Month:
    """A UTC calendar month, the billing period. Written ``YYYY-MM``."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12 or not 1 <= self.year <= 9998:
            raise ValueError(f"not a month: {self.year:04d}-{self.month:02d}")

    @classmethod
    def parse(cls, text: str) -> Month:
        """Parse ``YYYY-MM``; anything else is a ValueError with the reason."""
        match = _MONTH_PATTERN.match(text)
        if match is None:
            raise ValueError(f"month must look like YYYY-MM, got {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of(cls, micros: int) -> Month:
        """Return the UTC month an instant falls in."""
        day = day_of(micros)
        return cls(day.year, day.month)

    @classmethod
    def of_day(cls, day: date) -> Month:
        return cls(day.year, day.month)

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def last_day(self) -> date:
        return date(self.year, self.month, calendar.monthrange(self.year, self.month)[1])

    @property
    def start_us(self) -> int:
        """First microsecond of the month; periods are half-open ``[start, end)``."""
        return day_start(self.first_day)

    @property
    def end_us(self) -> int:
        """First microsecond of the next month."""
        return self.next().start_us

    def next(self) -> Month:
        if self.month == 12:
            return Month(self.year + 1, 1)
        return Month(self.year, self.month + 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"
