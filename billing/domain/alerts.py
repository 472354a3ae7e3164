"""Usage alerts: what a threshold measures, how a month-end amount is projected, and when it is crossed.

An account sets thresholds on one of five measures of a UTC month (docs/decisions.md, "After
finalization: usage alerts"): the month-to-date amount, the projected month-end amount (both in
the account's currency, as its statement computes them), connection minutes, messages, or
gigabytes out. A threshold is crossed when the measure *reaches* its limit (``>=``); each
threshold fires at most once per month, which the caller enforces with one crossing row per
(threshold, month) in the database. Everything here is pure: the checker loads, calls, writes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal
from enum import Enum

from billing.domain.exceptions import InvalidAmount
from billing.domain.ledger import draft_due_us, previous_month
from billing.domain.money import cents, exact_product, exact_shift, exact_sum, has_places, to_decimal
from kernel.instants import MICROS_PER_DAY, Month
from metering.domain.usage import UsageReport

BYTES_PER_GB = 10**9  # DESIGN.md: bandwidth is billed per GB of 10^9 bytes
GB_PLACES = 9  # a gigabyte limit is exact to the byte
# Limits stay below a quadrillion (money, minutes, messages, GB alike): far above any bill, and
# their exact text always fits the 40 characters of a money column.
LIMIT_CEILING = Decimal(10) ** 15
# The projection's one division, carried far past the cent before ``cents`` rounds it once.
_DIVISION = Context(prec=60, rounding=ROUND_HALF_UP)


class Measure(Enum):
    """What a threshold watches; the values are the API's and the CLI's names."""

    AMOUNT = "amount"  # month to date, the account's currency
    PROJECTED_AMOUNT = "projected_amount"  # projected month end, the account's currency
    CONNECTION_MINUTES = "connection_minutes"
    MESSAGES = "messages"
    GIGABYTES = "gigabytes"

    @property
    def is_money(self) -> bool:
        return self in (Measure.AMOUNT, Measure.PROJECTED_AMOUNT)


def parse_limit(measure: Measure, text: str) -> Decimal:
    """Read a threshold's limit: positive; money to the cent, minutes and messages whole, GB to the byte.

    Example: ``parse_limit(Measure.AMOUNT, "100.50") == Decimal("100.50")``; ``"100.505"`` is
    refused for an amount, ``"2.5"`` for messages, and ``"0"`` for every measure.
    """
    limit = to_decimal(text)
    if limit <= 0:
        raise InvalidAmount(f"a {measure.value} threshold must be above zero, got {text!r}")
    if limit >= LIMIT_CEILING:
        raise InvalidAmount(f"a {measure.value} threshold must be below 10^15, got {text!r}")
    places = 2 if measure.is_money else GB_PLACES if measure is Measure.GIGABYTES else 0
    if not has_places(limit, places):
        unit = {2: "to the cent (2 decimals at most)", 0: "a whole number"}.get(places, "to the byte (9 decimals)")
        raise InvalidAmount(f"a {measure.value} threshold is {unit}, got {text!r}")
    return limit


def months_to_check(now_us: int, grace_hours: int) -> list[Month]:
    """The months a checker looks at: the current one, and the one before while late events may still land in it.

    The previous month is checked until its draft is due (its end plus the statements' grace
    period), so an event of its last minutes that arrives after midnight still fires its
    crossings. Example: with 72 hours of grace, at 2026-04-02T10:00Z the months are 2026-04 and
    2026-03; at 2026-04-04T00:00Z only 2026-04.
    """
    current = Month.of(now_us)
    previous = previous_month(current)
    return [current, previous] if now_us < draft_due_us(previous, grace_hours) else [current]


def elapsed_fraction_us(month: Month, now_us: int) -> tuple[int, int]:
    """The part of ``month`` the projection counts as elapsed at ``now_us``, as (elapsed, length) microseconds.

    Elapsed is clamped to ``[1 day, length]``: before a day has passed, one day's usage is
    extrapolated as if it took a day (an hour's spike would otherwise project 720 times over),
    and from the month's end on the whole month has elapsed. Example: 2026-03 (31 days) at
    2026-03-11T00:00Z is (10 days, 31 days) in microseconds.
    """
    length = month.end_us - month.start_us
    elapsed = min(max(now_us - month.start_us, MICROS_PER_DAY), length)
    return elapsed, length


def project(usage_amount: Decimal, fixed_amount: Decimal, month: Month, now_us: int) -> Decimal:
    """The projected month-end amount: usage to date scaled to the whole month, plus the lines that do not grow.

    ``usage_amount`` is the statement's usage subtotal to date (connection minutes, messages,
    bandwidth: never negative); ``fixed_amount`` the rest of its total (adjustments, credits,
    prior-period lines), which is not extrapolated. The result is rounded half-up to the cent.
    Example: 12.40 of usage and a credit of -2.00 on 2026-03-11T00:00Z (10 of 31 days) project
    to 12.40 x 31 / 10 - 2.00 = 38.44 - 2.00 = 36.44; at the month's end the projection is the
    month to date, 10.40.
    """
    elapsed, length = elapsed_fraction_us(month, now_us)
    scaled = _DIVISION.divide(exact_product(usage_amount, Decimal(length)), Decimal(elapsed))
    return cents(exact_sum((scaled, fixed_amount)))


@dataclass(frozen=True, slots=True)
class Threshold:
    """One threshold of an account: ``measure`` reaching ``limit`` fires once per month."""

    id: str
    account_id: str
    measure: Measure
    limit: Decimal
    name: str


@dataclass(frozen=True, slots=True)
class MonthValues:
    """An account's five measures of one month, as a checker saw them at one instant.

    Money is None when it was not computed (the account has no money threshold).
    """

    usage: UsageReport
    amount: Decimal | None = None
    projected_amount: Decimal | None = None

    def value_of(self, measure: Measure) -> Decimal | None:
        """The measure's value to compare with a limit (gigabytes exact to the byte)."""
        if measure is Measure.AMOUNT:
            return self.amount
        if measure is Measure.PROJECTED_AMOUNT:
            return self.projected_amount
        if measure is Measure.CONNECTION_MINUTES:
            return Decimal(self.usage.connection_minutes)
        if measure is Measure.MESSAGES:
            return Decimal(self.usage.messages)
        return exact_shift(Decimal(self.usage.bytes_out), -GB_PLACES)


@dataclass(frozen=True, slots=True)
class Crossing:
    """A threshold whose measure reached its limit in ``month``: ``value`` is what was seen."""

    threshold: Threshold
    month: Month
    value: Decimal


def crossings(
    thresholds: Iterable[Threshold],
    values: Mapping[str, MonthValues],
    fired: Collection[str],
) -> list[Crossing]:
    """The thresholds newly crossed: the measure reached the limit and the threshold has not fired this month.

    ``values`` maps account id to its month's values (all of one month); ``fired`` holds the ids
    of thresholds that already have a crossing this month. Example: a ``messages`` limit of
    1000 with 1000 messages seen is crossed; with 999 it is not; once fired it is never returned
    again that month, whatever the values do.
    """
    found = []
    for threshold in thresholds:
        seen = values.get(threshold.account_id)
        if seen is None or threshold.id in fired:
            continue
        value = seen.value_of(threshold.measure)
        if value is not None and value >= threshold.limit:
            found.append(Crossing(threshold, seen.usage.month, value))
    return found


def usage_fingerprint(report: UsageReport) -> tuple[int, int, int]:
    """What a month's usage measures are made of: when it is unchanged, no usage threshold can newly be crossed.

    Example: a report of 10 minutes, 3 published + 4 delivered messages and 5 bytes is (10, 7, 5).
    The projection with unchanged usage only falls as the month goes on, so money thresholds are
    not crossed by time alone either (docs/decisions.md).
    """
    return report.connection_minutes, report.messages, report.bytes_out


def format_value(measure: Measure, value: Decimal) -> str:
    """A measure's value as the API and pages write it: money to the cent, GB to the byte, counts whole.

    Example: ``format_value(Measure.GIGABYTES, Decimal("1.5")) == "1.500000000"``.
    """
    places = 2 if measure.is_money else GB_PLACES if measure is Measure.GIGABYTES else 0
    return format(value.quantize(Decimal(1).scaleb(-places)), "f")
