"""The statement lifecycle's rules: due months, numbers, hashes, prior periods, composition."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing.domain import ledger
from billing.domain.exceptions import InvalidAmount
from billing.domain.rate_cards import DEFAULT_RATE_CARD
from kernel.instants import Month, to_micros
from metering.domain.usage import ServiceUsage, UsageReport

JAN, FEB, MAR, APR = Month(2026, 1), Month(2026, 2), Month(2026, 3), Month(2026, 4)


def report(month: Month, *services: ServiceUsage) -> UsageReport:
    return UsageReport("acc", month, services)


def at(*args: int) -> int:
    return to_micros(datetime(*args, tzinfo=UTC))  # type: ignore[misc]


def test_the_month_before_january_is_december_of_the_year_before() -> None:
    assert ledger.previous_month(JAN) == Month(2025, 12)
    assert ledger.previous_month(MAR) == FEB


def test_a_draft_is_due_when_the_month_has_closed_and_the_grace_period_has_passed() -> None:
    assert ledger.draft_due_us(MAR, 72) == at(2026, 4, 4)
    assert ledger.due_month(at(2026, 4, 3, 23, 59), 72) == FEB
    assert ledger.due_month(at(2026, 4, 4), 72) == MAR
    assert ledger.due_month(at(2026, 4, 1), 0) == MAR


def test_the_content_hash_is_the_sha256_of_the_canonical_json_with_its_own_hash_null() -> None:
    body = {"b": "é", "a": [1, 2], "content_hash": "ignored"}

    expected = hashlib.sha256('{"a":[1,2],"b":"é","content_hash":null}'.encode()).hexdigest()

    assert ledger.content_hash(body) == expected


def test_finalizing_a_body_sets_status_number_and_a_hash_that_verifies_and_nothing_else() -> None:
    draft = {"status": "draft", "number": None, "content_hash": None, "total": "1.00"}

    body = ledger.finalized_body(draft, "FM-2026-03-000001")

    assert {**body, "content_hash": None} == {**draft, "status": "finalized", "number": "FM-2026-03-000001"}
    assert body["content_hash"] == ledger.content_hash(body)
    assert json.dumps(draft)  # the draft given is not modified
    assert draft["status"] == "draft"


def test_a_statement_carries_the_run_of_finalized_months_just_before_it() -> None:
    statuses = {JAN: "finalized", FEB: "finalized", MAR: "draft"}

    assert ledger.carried_months(statuses, MAR) == [JAN, FEB]
    assert ledger.carried_months(statuses, APR) == []
    assert ledger.carried_months({FEB: "finalized"}, APR) == []
    assert ledger.carried_months({MAR: "finalized"}, APR) == [MAR]


def test_billed_usage_snapshots_round_trip_through_json() -> None:
    reports = [report(FEB, ServiceUsage("s1", 1, 2, 3, 4)), report(MAR)]

    data = ledger.snapshot_json(reports)

    assert data == {
        "2026-02": [
            {
                "service_id": "s1",
                "connection_minutes": 1,
                "messages_published": 2,
                "messages_delivered": 3,
                "bytes_out": 4,
            }
        ],
        "2026-03": [],
    }
    assert ledger.snapshot_from_json("acc", data) == {FEB: reports[0], MAR: reports[1]}


def test_the_latest_billed_snapshot_of_a_month_is_the_newest_finalized_statement_holding_it() -> None:
    own, carried = report(FEB, ServiceUsage("s1", 1)), report(FEB, ServiceUsage("s1", 5))
    finalized = {FEB: {FEB: own}, MAR: {MAR: report(MAR), FEB: carried}, APR: {APR: report(APR)}}

    assert ledger.latest_billed(finalized, FEB) == carried
    assert ledger.latest_billed(finalized, JAN) is None


def test_usage_metered_after_billing_becomes_one_prior_period_line_of_the_exact_difference() -> None:
    billed = report(FEB, ServiceUsage("s1", connection_minutes=1_494_999))
    current = report(FEB, ServiceUsage("s1", connection_minutes=1_495_001), ServiceUsage("s2", messages_published=7))

    line = ledger.prior_period_line(ledger.PriorPeriod(billed, current, DEFAULT_RATE_CARD))

    assert line is not None
    assert line.amount == Decimal("0.01")  # 1.50 - 1.49 minutes, + 0.00 for s2 messages
    assert line.description == ("Prior-period adjustment for 2026-02: +2 minutes, +7 messages, +0 bytes (0.01 USD)")


def test_nothing_metered_since_billing_gives_no_line() -> None:
    usage = report(FEB, ServiceUsage("s1", 10))

    assert ledger.prior_period_line(ledger.PriorPeriod(usage, usage, DEFAULT_RATE_CARD)) is None


def test_a_statement_lists_usage_then_prior_periods_then_adjustments_and_credits() -> None:
    usage = report(MAR, ServiceUsage("s1", connection_minutes=1_230_000))
    prior = ledger.prior_period_line(
        ledger.PriorPeriod(report(FEB), report(FEB, ServiceUsage("s1", 10**6)), DEFAULT_RATE_CARD)
    )
    assert prior is not None
    adjustments = [ledger.Adjustment(Decimal("-0.50"), "goodwill"), ledger.Adjustment(Decimal("2.00"), "setup", "s1")]

    statement = ledger.compose(usage, DEFAULT_RATE_CARD, "draft", [prior], adjustments)

    assert [(line.kind, line.amount) for line in statement.lines] == [
        ("connection_minutes", Decimal("1.23")),
        ("adjustment", Decimal("1.00")),
        ("adjustment", Decimal("-0.50")),
        ("adjustment", Decimal("2.00")),
    ]
    assert [line.description for line in statement.lines[2:]] == ["Credit: goodwill", "Adjustment: setup"]
    assert (statement.subtotal, statement.total) == (Decimal("1.23"), Decimal("3.73"))


@pytest.mark.parametrize("status", ["open", "draft", "finalized"])
def test_a_stored_body_reads_back_into_the_same_statement(status: str) -> None:
    usage = report(MAR, ServiceUsage("s1", 1_234_567, 5, 6, 1_000_000_001))
    statement = ledger.compose(usage, DEFAULT_RATE_CARD, status, [], [ledger.Adjustment(Decimal("-1.00"), "x")])

    again = ledger.statement_from_json(statement.to_json())

    assert again.to_json() == statement.to_json()
    assert again.notes == statement.notes


def test_an_adjustment_amount_is_to_the_cent_and_not_zero() -> None:
    assert ledger.adjustment_amount("-5.00") == Decimal("-5.00")
    assert ledger.adjustment_amount("3") == Decimal("3")
    with pytest.raises(InvalidAmount, match="to the cent"):
        ledger.adjustment_amount("1.005")
    with pytest.raises(InvalidAmount, match="changes nothing"):
        ledger.adjustment_amount("0.00")


def test_the_billed_snapshot_holds_the_own_month_and_only_carried_months_whose_usage_changed() -> None:
    unchanged = report(JAN, ServiceUsage("s1", 5))
    grown = ledger.PriorPeriod(
        report(FEB, ServiceUsage("s1", 1)), report(FEB, ServiceUsage("s1", 2)), DEFAULT_RATE_CARD
    )
    inputs = ledger.StatementInputs(
        report(MAR), DEFAULT_RATE_CARD, (ledger.PriorPeriod(unchanged, unchanged, DEFAULT_RATE_CARD), grown)
    )

    statement, billed = inputs.build("draft")

    assert sorted(billed) == ["2026-02", "2026-03"]
    assert [line.description[:36] for line in statement.lines] == ["Prior-period adjustment for 2026-02:"]
