import json
import re
from decimal import Decimal
from typing import Any

import pytest

from billing.domain.exceptions import InvalidStatement
from billing.domain.money import to_decimal
from billing.domain.rate_cards import DEFAULT_RATE_CARD, Rate, RateCard, Tier
from billing.domain.statements import (
    COMPUTE_NOTE,
    CSV_HEADER,
    Statement,
    StatementLine,
    adjustment_line,
    build_statement,
)
from kernel.instants import Month
from metering.domain.usage import ServiceUsage, UsageReport

JANUARY = Month(2026, 1)
STATEMENT_KEYS = [
    "account_id",
    "month",
    "status",
    "currency",
    "lines",
    "subtotal",
    "total",
    "number",
    "content_hash",
]
LINE_KEYS = ["service_id", "kind", "quantity", "unit", "unit_price", "amount", "description"]


def d(text: str) -> Decimal:
    return to_decimal(text)


def report(*services: ServiceUsage) -> UsageReport:
    return UsageReport("acct-1", JANUARY, services)


def usage(service_id: str = "svc-1", minutes=0, published=0, delivered=0, bytes_out=0) -> ServiceUsage:
    return ServiceUsage(service_id, minutes, published, delivered, bytes_out)


def graduated_card() -> RateCard:
    minutes = Rate((Tier(1, d("2.000000")), Tier(5, d("1.500000")), Tier(None, d("1.000000"))))
    bandwidth = Rate((Tier(10, d("0.120000")), Tier(None, d("0.080000"))))
    return RateCard("volume", "EUR", minutes, Rate.flat(d("2.000000")), bandwidth)


def only_line(statement: Statement) -> dict[str, Any]:
    lines: list[dict[str, Any]] = statement.to_json()["lines"]
    (line,) = lines
    return line


def test_connection_minutes_line_prices_minutes_per_million_with_a_readable_description():
    line = only_line(build_statement(report(usage(minutes=1_234_567)), DEFAULT_RATE_CARD, "draft"))
    assert line == {
        "service_id": "svc-1",
        "kind": "connection_minutes",
        "quantity": "1234567",
        "unit": "minute",
        "unit_price": "1.000000",
        "amount": "1.23",
        "description": "Connection time, service svc-1: 1,234,567 minutes at 1.000000 USD per million minutes",
    }


def test_messages_line_counts_published_plus_delivered_per_million():
    line = only_line(
        build_statement(report(usage(published=1_500_000, delivered=1_000_000)), DEFAULT_RATE_CARD, "draft")
    )
    assert (line["kind"], line["quantity"], line["unit"]) == ("messages", "2500000", "message")
    assert (line["unit_price"], line["amount"]) == ("2.000000", "5.00")
    assert "2,500,000 messages at 2.000000 USD per million messages" in line["description"]


def test_bandwidth_line_quantity_is_exact_gigabytes_with_nine_decimals():
    line = only_line(build_statement(report(usage(bytes_out=1_234_567_890)), DEFAULT_RATE_CARD, "draft"))
    # 1.234567890 GB x 0.12 = 0.1481481468 -> 0.15
    assert (line["kind"], line["quantity"], line["unit"], line["amount"]) == ("bandwidth", "1.234567890", "GB", "0.15")
    assert line["description"] == "Bandwidth out, service svc-1: 1.234567890 GB at 0.120000 USD per GB"


def test_a_whole_gigabyte_keeps_its_nine_decimals():
    line = only_line(build_statement(report(usage(bytes_out=10**9)), DEFAULT_RATE_CARD, "draft"))
    assert line["quantity"] == "1.000000000"


def test_a_line_at_exactly_half_a_cent_rounds_up():
    # 5,000 minutes at 1.000000 per million = 0.005 -> 0.01; 4,999 minutes = 0.004999 -> 0.00
    assert only_line(build_statement(report(usage(minutes=5_000)), DEFAULT_RATE_CARD, "draft"))["amount"] == "0.01"
    assert only_line(build_statement(report(usage(minutes=4_999)), DEFAULT_RATE_CARD, "draft"))["amount"] == "0.00"


def test_large_quantities_are_written_without_exponent_notation():
    statement = build_statement(report(usage(minutes=10**15, bytes_out=10**21)), DEFAULT_RATE_CARD, "draft")
    quantities = [line["quantity"] for line in statement.to_json()["lines"]]
    assert quantities == ["1000000000000000", "1000000000000.000000000"]
    assert all("E" not in q and "e" not in q for q in quantities)
    # 10^9 million minutes x 1.00 + 10^12 GB x 0.12
    assert statement.to_json()["total"] == "121000000000.00"


def test_flat_rate_gives_one_line_per_service_sorted_by_id_and_skips_unused_kinds():
    statement = build_statement(
        report(usage("svc-b", minutes=2_000_000), usage("svc-a", minutes=1_000_000, bytes_out=10**9)),
        DEFAULT_RATE_CARD,
        "draft",
    )
    rows = [(line.kind, line.service_id, line.amount) for line in statement.lines]
    assert rows == [
        ("connection_minutes", "svc-a", d("1.00")),
        ("connection_minutes", "svc-b", d("2.00")),
        ("bandwidth", "svc-a", d("0.12")),
    ]


def test_each_service_line_is_rounded_before_the_lines_are_summed():
    # each service: 0.005 -> 0.01, so the total is 0.02 (rounding the account total would give 0.01)
    statement = build_statement(
        report(usage("svc-1", minutes=5_000), usage("svc-2", minutes=5_000)), DEFAULT_RATE_CARD, "draft"
    )
    assert [line.amount for line in statement.lines] == [d("0.01"), d("0.01")]
    assert statement.subtotal == statement.total == d("0.02")


def test_graduated_rate_prices_the_account_total_in_one_line_per_band():
    usage_report = report(usage("svc-1", minutes=2_000_000), usage("svc-2", minutes=4_500_000))
    lines = build_statement(usage_report, graduated_card(), "draft").to_json()["lines"]
    assert [(x["service_id"], x["quantity"], x["unit_price"], x["amount"]) for x in lines] == [
        (None, "1000000", "2.000000", "2.00"),
        (None, "4000000", "1.500000", "6.00"),
        (None, "1500000", "1.000000", "1.50"),
    ]
    assert lines[0]["description"] == (
        "Connection time, all services, tier 1 (first 1 million minutes): "
        "1,000,000 minutes at 2.000000 EUR per million minutes"
    )
    assert "tier 2 (1 to 5 million minutes)" in lines[1]["description"]
    assert "tier 3 (over 5 million minutes)" in lines[2]["description"]


def test_graduated_bandwidth_bands_keep_exact_gigabytes():
    lines = build_statement(report(usage(bytes_out=12_500_000_001)), graduated_card(), "draft").to_json()["lines"]
    assert [(x["quantity"], x["amount"]) for x in lines] == [("10.000000000", "1.20"), ("2.500000001", "0.20")]
    assert "tier 2 (over 10 GB)" in lines[1]["description"]


def test_statement_json_has_exactly_the_design_keys():
    statement = build_statement(report(usage(minutes=1, published=1, bytes_out=1)), DEFAULT_RATE_CARD, "open")
    document = statement.to_json()
    assert list(document) == STATEMENT_KEYS
    assert all(list(line) == LINE_KEYS for line in document["lines"])
    assert document["month"] == "2026-01"
    assert (document["number"], document["content_hash"]) == (None, None)
    assert json.loads(json.dumps(document)) == document


def test_amounts_and_totals_are_strings_with_two_decimals():
    statement = build_statement(
        report(usage(minutes=1_234_567, published=3, bytes_out=999)), DEFAULT_RATE_CARD, "draft"
    )
    document = statement.to_json()
    amounts = [line["amount"] for line in document["lines"]] + [document["subtotal"], document["total"]]
    assert all(re.fullmatch(r"-?\d+\.\d{2}", amount) for amount in amounts)


def test_a_month_without_usage_has_no_lines_and_zero_totals():
    document = build_statement(report(usage()), DEFAULT_RATE_CARD, "draft").to_json()
    assert document["lines"] == []
    assert (document["subtotal"], document["total"]) == ("0.00", "0.00")


def test_total_adds_adjustments_and_credits_to_the_usage_subtotal():
    statement = build_statement(report(usage(minutes=3_000_000)), DEFAULT_RATE_CARD, "draft")
    credit = adjustment_line(d("-1.25"), "Goodwill credit")
    late = adjustment_line(d("0.40"), "Prior-period adjustment for 2025-12")
    adjusted = Statement(statement.account_id, statement.month, "draft", "USD", (*statement.lines, credit, late))
    assert adjusted.subtotal == d("3.00")
    assert adjusted.total == d("2.15")
    assert adjusted.to_json()["lines"][1] == {
        "service_id": None,
        "kind": "adjustment",
        "quantity": "1",
        "unit": "adjustment",
        "unit_price": "-1.250000",
        "amount": "-1.25",
        "description": "Goodwill credit",
    }


def test_csv_rows_have_the_header_the_lines_then_subtotal_and_total():
    statement = build_statement(report(usage(minutes=1_234_567)), DEFAULT_RATE_CARD, "draft")
    credit = adjustment_line(d("-0.23"), "Credit")
    rows = Statement("acct-1", JANUARY, "draft", "USD", (*statement.lines, credit)).to_csv_rows()
    assert rows[0] == list(CSV_HEADER)
    assert rows[1][:6] == ["svc-1", "connection_minutes", "1234567", "minute", "1.000000", "1.23"]
    assert rows[2][:6] == ["", "adjustment", "1", "adjustment", "-0.230000", "-0.23"]
    assert rows[-2][1] == "subtotal" and rows[-2][5] == "1.23"
    assert rows[-1][1] == "total" and rows[-1][5] == "1.00"


def test_notes_say_compute_is_billed_separately_but_stay_out_of_the_json():
    statement = build_statement(report(usage(minutes=1)), DEFAULT_RATE_CARD, "draft")
    assert statement.notes == (COMPUTE_NOTE,)
    assert "Compute is billed separately" in COMPUTE_NOTE
    assert "notes" not in statement.to_json()
    assert "Compute" not in json.dumps(statement.to_json())


def test_an_open_statement_is_noted_as_an_estimate():
    statement = build_statement(report(usage(minutes=1)), DEFAULT_RATE_CARD, "open")
    assert statement.notes[0] == COMPUTE_NOTE
    assert "estimate" in statement.notes[1]


def test_statement_takes_the_account_month_and_rate_card_currency():
    statement = build_statement(report(usage(minutes=1)), graduated_card(), "finalized")
    assert (statement.account_id, statement.month, statement.currency, statement.status) == (
        "acct-1",
        JANUARY,
        "EUR",
        "finalized",
    )


def test_an_unknown_status_is_rejected():
    with pytest.raises(InvalidStatement):
        build_statement(report(), DEFAULT_RATE_CARD, "paid")


@pytest.mark.parametrize(
    ("kind", "unit_price", "amount"),
    [("storage", "1", "1.00"), ("messages", "1", "1.005"), ("messages", "0.0000001", "1.00")],
)
def test_a_line_with_an_unknown_kind_or_unrounded_money_is_rejected(kind, unit_price, amount):
    with pytest.raises(InvalidStatement):
        StatementLine("svc-1", kind, d("1"), "message", d(unit_price), d(amount), "x")


def test_negative_usage_cannot_be_billed():
    with pytest.raises(ValueError):
        build_statement(report(usage(minutes=-1)), DEFAULT_RATE_CARD, "draft")
