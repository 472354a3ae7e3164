"""Connection minutes: round once per connection, then attribute each minute to its start period."""

from datetime import date

import pytest

from kernel.instants import MICROS_PER_MINUTE, MICROS_PER_SECOND, Month
from metering.domain.minutes import billable_minutes, minutes_beginning_in, minutes_by_day, minutes_by_month
from tests.strategies import utc_micros

SECOND = MICROS_PER_SECOND
MINUTE = MICROS_PER_MINUTE


@pytest.mark.parametrize(
    ("duration_us", "minutes"),
    [
        pytest.param(0, 1, id="0 s"),
        pytest.param(1, 1, id="1 µs"),
        pytest.param(59 * SECOND + 999_999, 1, id="59.999999 s"),
        pytest.param(60 * SECOND, 1, id="exactly 60 s"),
        pytest.param(60 * SECOND + 1, 2, id="60.000001 s"),
        pytest.param(120 * SECOND, 2, id="exactly 120 s"),
        pytest.param(150 * SECOND, 3, id="2 min 30 s"),
        pytest.param(31 * 24 * 60 * MINUTE, 44_640, id="31 days"),
    ],
)
def test_a_connection_is_billed_its_duration_rounded_up_to_whole_minutes_and_at_least_one(duration_us, minutes):
    assert billable_minutes(duration_us) == minutes


@pytest.mark.parametrize("duration_us", [-1, -SECOND, -90 * MINUTE])
def test_a_negative_duration_counts_as_zero_and_bills_one_minute(duration_us):
    assert billable_minutes(duration_us) == 1


def test_a_connection_opened_30_seconds_before_a_month_ends_bills_its_first_minute_in_that_month():
    start = utc_micros("2026-01-31T23:59:30Z")
    minutes = billable_minutes(utc_micros("2026-02-01T00:01:45Z") - start)

    assert minutes == 3
    assert minutes_by_month(start, minutes) == {Month(2026, 1): 1, Month(2026, 2): 2}
    assert minutes_by_day(start, minutes) == {date(2026, 1, 31): 1, date(2026, 2, 1): 2}


def test_a_minute_that_begins_exactly_at_midnight_belongs_to_the_new_month():
    start = utc_micros("2026-01-31T23:59:00Z")

    assert minutes_by_month(start, 2) == {Month(2026, 1): 1, Month(2026, 2): 1}
    assert minutes_by_day(start, 2) == {date(2026, 1, 31): 1, date(2026, 2, 1): 1}


def test_a_minute_that_begins_one_microsecond_before_midnight_stays_in_the_old_month():
    start = utc_micros("2026-01-31T23:58:00.000001Z")

    assert minutes_by_month(start, 2) == {Month(2026, 1): 2}


def test_a_single_minute_connection_is_attributed_to_the_month_it_opened_in_even_if_it_ends_after():
    start = utc_micros("2026-01-31T23:59:59.999999Z")

    assert minutes_by_month(start, billable_minutes(2 * SECOND)) == {Month(2026, 1): 1}


def test_a_connection_open_for_exactly_the_whole_of_march_bills_44640_minutes_all_in_march():
    start = utc_micros("2026-03-01T00:00:00Z")
    minutes = billable_minutes(utc_micros("2026-04-01T00:00:00Z") - start)

    assert minutes == 44_640
    assert minutes_by_month(start, minutes) == {Month(2026, 3): 44_640}
    by_day = minutes_by_day(start, minutes)
    assert by_day == {date(2026, 3, d): 1440 for d in range(1, 32)}


def test_a_connection_from_mid_february_to_mid_april_is_split_over_three_months():
    start = utc_micros("2026-02-15T12:00:00Z")
    minutes = billable_minutes(utc_micros("2026-04-15T12:00:00Z") - start)

    assert minutes == 59 * 1440
    assert minutes_by_month(start, minutes) == {
        Month(2026, 2): 19_440,  # 13.5 days of a 28-day February
        Month(2026, 3): 44_640,
        Month(2026, 4): 20_880,  # 14.5 days
    }


def test_a_connection_not_aligned_to_the_minute_splits_where_each_minute_begins():
    start = utc_micros("2026-02-15T12:00:30Z")
    minutes = billable_minutes(utc_micros("2026-04-15T12:00:00Z") - start)

    # 59 days less 30 s rounds up to 84,960 minutes; minute 19,439 begins 2026-02-28T23:59:30.
    assert minutes == 84_960
    assert minutes_by_month(start, minutes) == {Month(2026, 2): 19_440, Month(2026, 3): 44_640, Month(2026, 4): 20_880}


def test_a_connection_across_new_year_bills_december_and_january_of_the_next_year():
    start = utc_micros("2025-12-31T23:58:00.5Z")
    minutes = billable_minutes(5 * MINUTE)

    assert minutes_by_month(start, minutes) == {Month(2025, 12): 2, Month(2026, 1): 3}
    assert minutes_by_day(start, minutes) == {date(2025, 12, 31): 2, date(2026, 1, 1): 3}


def test_a_leap_day_is_a_day_of_its_own_and_february_2028_has_29_days_of_minutes():
    start = utc_micros("2028-02-01T00:00:00Z")
    minutes = billable_minutes(utc_micros("2028-03-01T00:00:30Z") - start)

    assert minutes_by_month(start, minutes) == {Month(2028, 2): 29 * 1440, Month(2028, 3): 1}
    assert minutes_by_day(start, minutes)[date(2028, 2, 29)] == 1440


def test_minutes_beginning_in_a_period_count_only_minutes_whose_start_lies_in_the_half_open_period():
    start = utc_micros("2026-01-31T23:59:30Z")
    midnight = utc_micros("2026-02-01T00:00:00Z")

    assert minutes_beginning_in(start, 3, midnight, midnight + 24 * 60 * MINUTE) == 2
    assert minutes_beginning_in(start, 3, midnight - 24 * 60 * MINUTE, midnight) == 1
    # Minutes begin 23:59:30, 00:00:30 and 00:01:30.
    assert minutes_beginning_in(start, 3, midnight + 30 * SECOND + 1, midnight + MINUTE + 30 * SECOND) == 0
    assert minutes_beginning_in(start, 3, midnight + MINUTE + 30 * SECOND, midnight + 2 * MINUTE) == 1
    assert minutes_beginning_in(start, 3, start + MINUTE, start + MINUTE + 1) == 1


def test_no_minute_begins_in_a_period_entirely_before_or_after_the_connection():
    start = utc_micros("2026-02-10T10:00:00Z")

    assert minutes_beginning_in(start, 10, start - 60 * MINUTE, start) == 0
    assert minutes_beginning_in(start, 10, start + 10 * MINUTE, start + 60 * MINUTE) == 0
