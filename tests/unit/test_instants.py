from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from kernel.instants import Month, day_of, day_start, from_micros, to_micros


def test_a_naive_datetime_is_refused_rather_than_guessed():
    with pytest.raises(ValueError, match="naive"):
        to_micros(datetime(2026, 1, 31, 23, 59))  # noqa: DTZ001


def test_an_offset_instant_becomes_the_same_utc_microsecond():
    local = datetime(2026, 2, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))

    assert from_micros(to_micros(local)) == datetime(2026, 1, 31, 23, 30, tzinfo=UTC)


def test_days_are_utc_calendar_days_and_half_open():
    midnight = to_micros(datetime(2026, 2, 1, tzinfo=UTC))

    assert day_of(midnight - 1) == date(2026, 1, 31)
    assert day_of(midnight) == date(2026, 2, 1)
    assert day_start(date(2026, 2, 1)) == midnight


@pytest.mark.parametrize("text", ["2026-1", "2026-13", "26-01", "2026-00", "2026/01", " 2026-01"])
def test_a_month_that_is_not_yyyy_mm_is_refused_with_the_reason(text):
    with pytest.raises(ValueError, match="month"):
        Month.parse(text)


def test_months_know_their_days_and_bounds_including_leap_february():
    february = Month.parse("2028-02")

    assert (february.first_day, february.last_day) == (date(2028, 2, 1), date(2028, 2, 29))
    assert february.end_us == Month(2028, 3).start_us
    assert Month(2026, 12).next() == Month(2027, 1)
    assert str(Month(2026, 3)) == "2026-03"
    assert Month.of(Month(2026, 3).end_us - 1) == Month(2026, 3)
