"""Usage alerts' rules as properties: the projection never falls below the month to date, and each
threshold fires once per month whatever order or repetition its checks come in."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from billing.domain.alerts import Measure, MonthValues, Threshold, crossings, project
from kernel.instants import Month
from metering.domain.usage import ServiceUsage, UsageReport

months = st.builds(Month, st.integers(2000, 2100), st.integers(1, 12))
usage_amounts = st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False)
fixed_amounts = st.decimals(min_value=-(10**9), max_value=10**9, places=2, allow_nan=False, allow_infinity=False)


@st.composite
def months_and_instants(draw: st.DrawFn) -> tuple[Month, int]:
    """A month and any instant from a day before it starts to a day after it ends."""
    month = draw(months)
    day = 86_400_000_000
    return month, draw(st.integers(month.start_us - day, month.end_us + day))


@given(usage_amounts, fixed_amounts, months_and_instants())
def test_the_projection_never_projects_less_than_the_month_to_date(
    usage: Decimal, fixed: Decimal, when: tuple[Month, int]
) -> None:
    month, now_us = when
    assert project(usage, fixed, month, now_us) >= usage + fixed


@given(usage_amounts, fixed_amounts, months)
def test_at_and_after_the_month_end_the_projection_is_the_month_to_date(
    usage: Decimal, fixed: Decimal, month: Month
) -> None:
    assert project(usage, fixed, month, month.end_us) == usage + fixed
    assert project(usage, fixed, month, month.end_us + 1) == usage + fixed


@given(usage_amounts, fixed_amounts, months_and_instants(), st.integers(0, 40 * 86_400_000_000))
def test_with_usage_unchanged_the_projection_never_rises_as_the_month_goes_on(
    usage: Decimal, fixed: Decimal, when: tuple[Month, int], later_by_us: int
) -> None:
    month, now_us = when
    assert project(usage, fixed, month, now_us + later_by_us) <= project(usage, fixed, month, now_us)


@given(usage_amounts, usage_amounts, fixed_amounts, months_and_instants())
def test_more_usage_never_projects_less(
    first: Decimal, second: Decimal, fixed: Decimal, when: tuple[Month, int]
) -> None:
    month, now_us = when
    low, high = sorted((first, second))
    assert project(low, fixed, month, now_us) <= project(high, fixed, month, now_us)


@given(usage_amounts, fixed_amounts, months_and_instants())
def test_the_projection_is_to_the_cent(usage: Decimal, fixed: Decimal, when: tuple[Month, int]) -> None:
    month, now_us = when
    assert project(usage, fixed, month, now_us).as_tuple().exponent == -2


MONTH = Month(2026, 3)
THRESHOLDS = [
    Threshold("thr_m", "acc", Measure.MESSAGES, Decimal(50), "messages"),
    Threshold("thr_c", "acc", Measure.CONNECTION_MINUTES, Decimal(30), "minutes"),
    Threshold("thr_g", "acc", Measure.GIGABYTES, Decimal("0.000001"), "bytes"),
]


def _values(minutes: int, messages: int, bytes_out: int) -> MonthValues:
    return MonthValues(UsageReport("acc", MONTH, (ServiceUsage("svc", minutes, messages, 0, bytes_out),)))


checks = st.lists(st.tuples(st.integers(0, 60), st.integers(0, 100), st.integers(0, 3000)), max_size=12)


def _fire_all(observations: list[tuple[int, int, int]]) -> list[str]:
    """Run a checker over successive observations, remembering what fired (the crossing rows)."""
    fired: list[str] = []
    for minutes, messages, bytes_out in observations:
        for crossing in crossings(THRESHOLDS, {"acc": _values(minutes, messages, bytes_out)}, set(fired)):
            fired.append(crossing.threshold.id)
    return fired


@given(checks, st.randoms())
def test_each_threshold_fires_at_most_once_a_month_and_repeating_or_reordering_checks_changes_nothing_of_that(
    observations: list[tuple[int, int, int]], rng: object
) -> None:
    fired = _fire_all(observations)
    repeated = observations + observations[::-1]
    shuffled = list(repeated)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]

    assert len(fired) == len(set(fired))
    assert set(_fire_all(repeated)) == set(fired)
    # Whatever the order, a threshold fires iff some observation reached its limit.
    assert set(_fire_all(shuffled)) == set(fired)
