"""Properties of credit notes (DESIGN.md "After finalization"): whatever finance asks and whatever
usage arrives late, a finalized statement keeps its body and content hash, and what is credited
never exceeds the statement's total, nor any line's amount.

A pure model of the service: a month's statement is built and finalized as ``billing.statements``
does; then credit-note requests (whole or per line, any amounts, many refused) and late usage of
that month (which lands as a prior-period line on the next statement) arrive in any order.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import event, given, settings
from hypothesis import strategies as st

from billing.domain import credit_notes as cn
from billing.domain import ledger
from billing.domain.exceptions import InvalidCreditNote
from billing.domain.money import ZERO, cents, exact_product, exact_sum
from billing.domain.rate_cards import RateCard
from billing.domain.statements import Statement
from kernel.instants import Month
from metering.domain.usage import ServiceUsage, UsageReport
from tests.strategies_billing import rate_cards, usage_reports

MARCH, APRIL = Month(2026, 3), Month(2026, 4)
ISSUED = datetime(2026, 4, 10, tzinfo=UTC)
# An amount is a share of what it is drawn against (the statement's total or a line's amount),
# from nothing to 130 % of it, so requests are often accepted and often over; or an odd amount.
shares = st.integers(1, 130)
odd = st.sampled_from([Decimal("-1.00"), Decimal("0.00"), Decimal("0.005"), Decimal("0.01")])
credit_requests = st.one_of(
    st.tuples(st.just("whole"), st.one_of(shares, shares, shares, odd)),
    st.tuples(
        st.just("lines"),
        st.lists(
            st.tuples(st.integers(1, 8), st.one_of(shares, shares, shares, odd)),
            min_size=1,
            max_size=4,
            unique_by=lambda pair: pair[0],
        ),
    ),
)
credit = st.tuples(st.just("credit"), credit_requests)
steps = st.lists(st.one_of(credit, credit, st.tuples(st.just("late"), usage_reports())), min_size=1, max_size=12)


def _amount(share: int | Decimal, of: Decimal) -> Decimal:
    return share if isinstance(share, Decimal) else cents(exact_product(of, Decimal(share).scaleb(-2)))


def _request(statement: Statement, drawn: tuple[str, object]) -> cn.CreditRequest:
    kind, value = drawn
    if kind == "whole":
        assert isinstance(value, int | Decimal)
        return cn.CreditRequest("whole", amount=_amount(value, statement.total))
    assert isinstance(value, list)
    of = {n: line.amount for n, line in enumerate(statement.lines, start=1)}
    return cn.CreditRequest("per line", tuple((n, _amount(share, of.get(n, Decimal(1)))) for n, share in value))


BASE = UsageReport("acc", MARCH, (ServiceUsage("svc-base", 10**8, 10**7, 10**7, 10**11),))


def _report(month: Month, report: UsageReport) -> UsageReport:
    return UsageReport("acc", month, report.services)


def _plus(left: UsageReport, right: UsageReport) -> UsageReport:
    return UsageReport("acc", left.month, (*left.services, *right.services))


@settings(max_examples=150, deadline=None)
@given(usage=usage_reports(), card=rate_cards(), steps=steps)
def test_no_credit_note_or_late_event_changes_a_finalized_statement_or_credits_more_than_its_total(
    usage: UsageReport, card: RateCard, steps: list[tuple[str, object]]
) -> None:
    billed = _plus(_report(MARCH, usage), BASE)  # some usage, so that most statements have something to credit
    statement, _ = ledger.StatementInputs(billed, card).build("draft")
    body = ledger.finalized_body(statement.to_json(), "FM-2026-000001")
    kept, finalized = copy.deepcopy(body), ledger.statement_from_json(body)
    current, notes = billed, []

    for index, (kind, value) in enumerate(steps):
        if kind == "late":
            assert isinstance(value, UsageReport)
            current = _plus(current, _report(MARCH, value))
            april, _ = ledger.StatementInputs(
                UsageReport("acc", APRIL), card, (ledger.PriorPeriod(billed, current, card),)
            ).build("open")
            assert april.month == APRIL  # the late usage is billed there, never on March
            continue
        request = _request(finalized, value)  # type: ignore[arg-type]
        try:
            lines = cn.credit_lines(finalized, notes, request)
        except InvalidCreditNote:
            continue
        at = ISSUED + timedelta(minutes=index)
        notes.append(cn.CreditNote(f"CN-2026-{index + 1:06d}", "acc", MARCH, body["number"], body["content_hash"],
                                   "USD", request.reason, lines, at, "finance"))  # fmt: skip

        shown = cn.with_credit_notes(body, notes)
        assert body == kept
        assert ledger.content_hash(shown) == kept["content_hash"] == ledger.content_hash(body)
        assert ZERO < cn.credited(notes) <= finalized.total
        assert Decimal(shown["remaining"]) >= ZERO
        for position, line in enumerate(finalized.lines, start=1):
            on_line = exact_sum(c.amount for n in notes for c in n.lines if c.line == position)
            assert on_line <= max(line.amount, ZERO)
    event(f"credit notes issued: {min(len(notes), 3)}")
    assert body == kept
