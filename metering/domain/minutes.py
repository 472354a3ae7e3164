"""Connection minutes: round once per connection, then attribute each minute to a period.

DESIGN.md: a connection's billable minutes are ``max(1, ceil(duration / 60 s))``, and
minute *k* is the interval ``[start + 60k s, start + 60(k+1) s)``, attributed to the
UTC period (day, month) in which it begins. The sum over periods is therefore always
the connection's own rounded total: nothing is rounded twice.
"""

from __future__ import annotations

from datetime import date

from kernel.instants import MICROS_PER_DAY, MICROS_PER_MINUTE, Month, day_of, day_start


def billable_minutes(duration_us: int) -> int:
    """Return the billable minutes of a connection that lasted ``duration_us``.

    At least one minute, otherwise the duration rounded up to whole minutes; a negative
    duration (an end seen before the start) counts as zero.
    Example: 60 s -> 1, 60.000001 s -> 2, 0 s -> 1.
    """
    return max(1, -(-max(0, duration_us) // MICROS_PER_MINUTE))


def minutes_beginning_in(start_us: int, minutes: int, period_start_us: int, period_end_us: int) -> int:
    """Count the minutes *k* < ``minutes`` whose start ``start + k min`` lies in ``[period_start, period_end)``.

    Example: a 3-minute connection opened 30 s before midnight has minute 0 before
    midnight and minutes 1 and 2 after it, so the day after gets 2.
    """
    first = _first_minute_at_or_after(start_us, period_start_us)
    past_last = _first_minute_at_or_after(start_us, period_end_us)
    return max(0, min(past_last, minutes) - min(max(first, 0), minutes))


def _first_minute_at_or_after(start_us: int, instant_us: int) -> int:
    """Smallest k (possibly negative) with ``start + k min >= instant``."""
    return -(-(instant_us - start_us) // MICROS_PER_MINUTE)


def minutes_by_day(start_us: int, minutes: int) -> dict[date, int]:
    """Split a connection's rounded minutes over the UTC days in which each minute begins.

    Example: start 2026-01-31T23:59:30Z, 3 minutes -> {2026-01-31: 1, 2026-02-01: 2}.
    """
    last_minute_start = start_us + (minutes - 1) * MICROS_PER_MINUTE
    split: dict[date, int] = {}
    day = day_of(start_us)
    while day_start(day) <= last_minute_start:
        begin = day_start(day)
        count = minutes_beginning_in(start_us, minutes, begin, begin + MICROS_PER_DAY)
        if count:
            split[day] = count
        day = day.fromordinal(day.toordinal() + 1)
    return split


def minutes_by_month(start_us: int, minutes: int) -> dict[Month, int]:
    """Split a connection's rounded minutes over the UTC months in which each minute begins.

    Example: start 2026-01-31T23:59:30Z, 3 minutes -> {2026-01: 1, 2026-02: 2}.
    """
    last_minute_start = start_us + (minutes - 1) * MICROS_PER_MINUTE
    split: dict[Month, int] = {}
    month = Month.of(start_us)
    while month.start_us <= last_minute_start:
        count = minutes_beginning_in(start_us, minutes, month.start_us, month.end_us)
        if count:
            split[month] = count
        month = month.next()
    return split
