"""Properties of DESIGN.md's billing rules (STYLE.md point 21)."""

import json
import re
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from billing.domain.money import to_decimal
from billing.domain.pricing import graduated_amount, tier_bands
from billing.domain.rate_cards import Rate, RateCard
from billing.domain.statements import Statement, adjustment_line, build_statement
from metering.domain.usage import UsageReport
from tests.strategies_billing import (
    MAX_PRICE,
    flat_rates,
    graduated_rates,
    prices,
    rate_cards,
    rates,
    split_usage_reports,
    usage_reports,
)

EPSILON = to_decimal("0.000000001")
STATUSES = st.sampled_from(["open", "draft", "finalized"])
TWO_DECIMALS = re.compile(r"-?\d+\.\d{2}")


def quantities(max_value: int = 20_000) -> st.SearchStrategy[Decimal]:
    return st.decimals(min_value=Decimal("0"), max_value=Decimal(max_value), places=9)


def kind_totals(statement: Statement) -> dict[str, Decimal]:
    totals = {"connection_minutes": Decimal("0"), "messages": Decimal("0"), "bandwidth": Decimal("0")}
    for line in statement.lines:
        totals[line.kind] += line.quantity
    return totals


def usage_totals(usage: UsageReport) -> dict[str, Decimal]:
    return {
        "connection_minutes": to_decimal(usage.connection_minutes),
        "messages": to_decimal(usage.messages),
        "bandwidth": to_decimal(usage.bytes_out).scaleb(-9),
    }


@given(graduated_rates())
def test_graduated_amount_is_continuous_at_every_tier_boundary(rate: Rate):
    for below, above in zip(rate.tiers, rate.tiers[1:], strict=False):
        assert below.up_to is not None
        bound = to_decimal(below.up_to)
        at_bound = graduated_amount(bound, rate)
        # approaching from either side, the step is one epsilon at the adjacent tier's price: no jump
        assert at_bound - graduated_amount(bound - EPSILON, rate) == EPSILON * below.unit_price
        assert graduated_amount(bound + EPSILON, rate) - at_bound == EPSILON * above.unit_price
        assert at_bound - graduated_amount(bound - EPSILON, rate) <= EPSILON * MAX_PRICE


@given(rates(), quantities(), quantities())
def test_graduated_amount_never_decreases_as_quantity_grows(rate: Rate, first: Decimal, second: Decimal):
    low, high = sorted((first, second))
    assert graduated_amount(low, rate) <= graduated_amount(high, rate)


@given(rates(), quantities())
def test_tier_bands_add_up_to_the_quantity(rate: Rate, quantity: Decimal):
    assert sum((band for band, _ in tier_bands(quantity, rate)), Decimal("0")) == quantity


@given(prices(), quantities())
def test_a_flat_rate_costs_quantity_times_price(price: Decimal, quantity: Decimal):
    assert graduated_amount(quantity, Rate.flat(price)) == quantity * price


@given(usage_reports(), rate_cards(), STATUSES)
def test_every_line_amount_has_exactly_two_decimals(usage: UsageReport, card: RateCard, status: str):
    document = build_statement(usage, card, status).to_json()
    amounts = [line["amount"] for line in document["lines"]] + [document["subtotal"], document["total"]]
    assert all(TWO_DECIMALS.fullmatch(amount) for amount in amounts)
    assert all(line.amount.as_tuple().exponent == -2 for line in build_statement(usage, card, status).lines)


@given(usage_reports(), rate_cards(), st.lists(st.decimals(-1000, 1000, places=2), max_size=3))
def test_total_equals_the_sum_of_the_rounded_lines(usage: UsageReport, card: RateCard, adjustments: list[Decimal]):
    built = build_statement(usage, card, "draft")
    credits = tuple(adjustment_line(amount, "adjustment") for amount in adjustments)
    statement = Statement(built.account_id, built.month, "draft", card.currency, built.lines + credits)
    assert statement.subtotal == sum((line.amount for line in built.lines), Decimal("0"))
    assert statement.total == sum((line.amount for line in statement.lines), Decimal("0"))


@given(usage_reports(), rate_cards())
def test_line_quantities_add_up_to_the_usage_report(usage: UsageReport, card: RateCard):
    assert kind_totals(build_statement(usage, card, "draft")) == usage_totals(usage)


@given(split_usage_reports(), rate_cards(flat_rates()))
def test_splitting_usage_across_services_never_changes_the_summed_quantities(
    reports: tuple[UsageReport, UsageReport], card: RateCard
):
    whole, split = reports
    assert kind_totals(build_statement(split, card, "draft")) == kind_totals(build_statement(whole, card, "draft"))


@given(split_usage_reports(), rate_cards(graduated_rates()))
def test_with_graduated_rates_splitting_usage_across_services_changes_no_line(
    reports: tuple[UsageReport, UsageReport], card: RateCard
):
    whole, split = reports
    assert build_statement(split, card, "draft").lines == build_statement(whole, card, "draft").lines


@given(usage_reports(), rate_cards(), STATUSES)
def test_statement_json_round_trips_through_json_dumps(usage: UsageReport, card: RateCard, status: str):
    document = build_statement(usage, card, status).to_json()
    assert json.loads(json.dumps(document)) == document
    assert all("E" not in line["quantity"] for line in document["lines"])
