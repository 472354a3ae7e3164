"""Usage alerts' pure rules: limits, the projection's worked example, crossings and how values are written."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing.domain.alerts import (
    Measure,
    MonthValues,
    Threshold,
    crossings,
    elapsed_fraction_us,
    format_value,
    months_to_check,
    parse_limit,
    project,
    usage_fingerprint,
)
from billing.domain.exceptions import InvalidAmount
from kernel.instants import MICROS_PER_DAY, Month, to_micros
from metering.domain.usage import ServiceUsage, UsageReport

MARCH = Month(2026, 3)
REPORT = UsageReport("acc", MARCH, (ServiceUsage("svc", 10, 3, 4, 5), ServiceUsage("svc2", 20, 0, 1, 2_500_000_000)))


def test_limits_are_positive_money_to_the_cent_counts_whole_and_gigabytes_to_the_byte() -> None:
    assert parse_limit(Measure.AMOUNT, "100.50") == Decimal("100.50")
    assert parse_limit(Measure.PROJECTED_AMOUNT, "7") == Decimal(7)
    assert parse_limit(Measure.MESSAGES, "1000") == Decimal(1000)
    assert parse_limit(Measure.GIGABYTES, "0.000000001") == Decimal("0.000000001")


@pytest.mark.parametrize(
    ("measure", "text", "reason"),
    [
        (Measure.AMOUNT, "100.505", "to the cent"),
        (Measure.MESSAGES, "2.5", "a whole number"),
        (Measure.CONNECTION_MINUTES, "0", "above zero"),
        (Measure.GIGABYTES, "0.0000000001", "to the byte"),
        (Measure.AMOUNT, "-1", "above zero"),
        (Measure.MESSAGES, "1e999999", "below 10\\^15"),
        (Measure.GIGABYTES, "1000000000000000", "below 10\\^15"),
    ],
)
def test_a_limit_the_rules_refuse_says_why(measure: Measure, text: str, reason: str) -> None:
    with pytest.raises(InvalidAmount, match=reason):
        parse_limit(measure, text)


def test_the_projection_worked_example_of_docs_decisions() -> None:
    now = to_micros(datetime(2026, 3, 11, tzinfo=UTC))

    assert elapsed_fraction_us(MARCH, now) == (10 * MICROS_PER_DAY, 31 * MICROS_PER_DAY)
    assert project(Decimal("12.40"), Decimal("-2.00"), MARCH, now) == Decimal("36.44")
    assert project(Decimal("12.40"), Decimal("-2.00"), MARCH, MARCH.end_us) == Decimal("10.40")


def test_in_the_first_day_one_day_is_counted_as_elapsed() -> None:
    an_hour_in = MARCH.start_us + 3600 * 1_000_000

    assert elapsed_fraction_us(MARCH, an_hour_in) == (MICROS_PER_DAY, 31 * MICROS_PER_DAY)
    assert project(Decimal("1.00"), Decimal(0), MARCH, an_hour_in) == Decimal("31.00")


def test_each_measure_reads_its_value_and_unpriced_money_is_none() -> None:
    values = MonthValues(REPORT)
    priced = MonthValues(REPORT, Decimal("1.50"), Decimal("4.65"))

    assert values.value_of(Measure.CONNECTION_MINUTES) == 30
    assert values.value_of(Measure.MESSAGES) == 8
    assert values.value_of(Measure.GIGABYTES) == Decimal("2.500000005")
    assert values.value_of(Measure.AMOUNT) is None
    assert priced.value_of(Measure.AMOUNT) == Decimal("1.50")
    assert priced.value_of(Measure.PROJECTED_AMOUNT) == Decimal("4.65")


def test_a_threshold_is_crossed_when_its_measure_reaches_the_limit_and_not_again_once_fired() -> None:
    reached = Threshold("thr_1", "acc", Measure.MESSAGES, Decimal(8), "eight")
    short = Threshold("thr_2", "acc", Measure.MESSAGES, Decimal(9), "nine")
    unpriced = Threshold("thr_3", "acc", Measure.AMOUNT, Decimal("0.01"), "money")
    elsewhere = Threshold("thr_4", "acc_quiet", Measure.MESSAGES, Decimal(1), "no values")
    values = {"acc": MonthValues(REPORT)}

    found = crossings([reached, short, unpriced, elsewhere], values, fired=())

    assert [(c.threshold.id, c.month, c.value) for c in found] == [("thr_1", MARCH, Decimal(8))]
    assert crossings([reached], values, fired={"thr_1"}) == []


def test_the_usage_fingerprint_is_minutes_messages_and_bytes() -> None:
    assert usage_fingerprint(REPORT) == (30, 8, 2_500_000_005)


def test_values_are_written_as_their_measure_counts_them() -> None:
    assert format_value(Measure.AMOUNT, Decimal("3")) == "3.00"
    assert format_value(Measure.MESSAGES, Decimal("1000")) == "1000"
    assert format_value(Measure.GIGABYTES, Decimal("1.5")) == "1.500000000"
    assert Measure.AMOUNT.is_money and not Measure.GIGABYTES.is_money


def test_the_previous_month_is_checked_until_its_draft_is_due() -> None:
    april_2nd = to_micros(datetime(2026, 4, 2, 10, tzinfo=UTC))
    april_4th = to_micros(datetime(2026, 4, 4, tzinfo=UTC))

    assert months_to_check(april_2nd, 72) == [Month(2026, 4), MARCH]
    assert months_to_check(april_4th, 72) == [Month(2026, 4)]
