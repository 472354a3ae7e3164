"""Properties of the statement lifecycle (STYLE.md 21): late events never change a finalized statement.

A pure model of the service's loop, month after month: usage of any past month keeps
arriving in random waves; each month's statement is built the way ``billing.statements``
builds it (carried months, latest billed snapshots, ``StatementInputs``) and finalized.
"""

from __future__ import annotations

import copy
import re
from collections import defaultdict
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.domain import ledger
from billing.domain.money import exact_sum
from billing.domain.rate_card_json import CardVersion, card_from_json, card_in_force, card_to_json
from billing.domain.rate_cards import DEFAULT_RATE_CARD, RateCard
from billing.domain.statements import Statement, build_statement
from kernel.instants import Month
from metering.domain.usage import ServiceUsage, UsageReport
from tests.strategies_billing import rate_cards

MONTHS = [Month(2026, m) for m in range(1, 7)]
SERVICES = ("svc-a", "svc-b")
TWO_DECIMALS = re.compile(r"-?\d+\.\d{2}")
PRIOR = re.compile(r"^Prior-period adjustment for (\d{4}-\d{2}):")
Usage = dict[Month, dict[str, list[int]]]  # month -> service -> [minutes, published, delivered, bytes]


def increments() -> st.SearchStrategy[tuple[int, str, tuple[int, int, int, int]]]:
    """Usage of one service arriving for the month ``offset`` months before the current one."""
    amounts = st.tuples(*(st.integers(0, 5 * 10**6) for _ in range(3)), st.integers(0, 5 * 10**9))
    return st.tuples(st.integers(0, 3), st.sampled_from(SERVICES), amounts)


def report(usage: Usage, month: Month) -> UsageReport:
    services = usage.get(month, {})
    return UsageReport("acc", month, tuple(ServiceUsage(sid, *services[sid]) for sid in sorted(services)))


def statement_for(
    month: Month,
    usage: Usage,
    finalized: dict[Month, tuple[dict[str, Any], dict[Month, UsageReport]]],
    cards: dict[Month, RateCard],
    status: str,
) -> tuple[Statement, dict[str, Any]]:
    statuses = dict.fromkeys(finalized, ledger.FINALIZED)
    snapshots = {m: billed for m, (_, billed) in finalized.items()}
    prior = tuple(
        ledger.PriorPeriod(
            ledger.latest_billed(snapshots, carried) or UsageReport("acc", carried),
            report(usage, carried),
            cards[carried],
        )
        for carried in ledger.carried_months(statuses, month)
    )
    return ledger.StatementInputs(report(usage, month), cards[month], prior).build(status)


@settings(max_examples=60, deadline=None)
@given(
    waves=st.lists(st.lists(increments(), max_size=4), min_size=len(MONTHS), max_size=len(MONTHS)),
    cards=st.lists(rate_cards(), min_size=len(MONTHS), max_size=len(MONTHS)),
)
def test_no_late_event_changes_a_finalized_statement_and_each_lands_exactly_once(
    waves: list[list[tuple[int, str, tuple[int, int, int, int]]]], cards: list[RateCard]
) -> None:
    card_of = dict(zip(MONTHS, cards, strict=True))
    usage: Usage = defaultdict(lambda: defaultdict(lambda: [0, 0, 0, 0]))
    finalized: dict[Month, tuple[dict[str, Any], dict[Month, UsageReport]]] = {}
    kept: dict[Month, dict[str, Any]] = {}
    for index, month in enumerate(MONTHS[:-1]):
        for offset, service, amounts in waves[index]:  # usage of this month, and late usage of earlier ones
            target = MONTHS[max(0, index - offset)]
            usage[target][service] = [a + b for a, b in zip(usage[target][service], amounts, strict=True)]
        statement, billed = statement_for(month, usage, finalized, card_of, "draft")
        body = ledger.finalized_body(statement.to_json(), f"FM-2026-{index + 1:06d}")
        finalized[month] = (body, ledger.snapshot_from_json("acc", billed))
        kept[month] = copy.deepcopy(body)

    last, _ = statement_for(MONTHS[-1], usage, finalized, card_of, "open")

    for month, (body, _) in finalized.items():
        assert body == kept[month]
        assert body["content_hash"] == ledger.content_hash(body)
    billed_per_month: dict[str, list[Decimal]] = defaultdict(list)
    for body in [*(body for body, _ in finalized.values()), last.to_json()]:
        billed_per_month[body["month"]].append(Decimal(body["subtotal"]))
        for line in body["lines"]:
            if match := PRIOR.match(line["description"]):
                billed_per_month[match.group(1)].append(Decimal(line["amount"]))
    for month in MONTHS[:-1]:
        expected = build_statement(report(usage, month), card_of[month], "draft").subtotal
        assert exact_sum(billed_per_month[str(month)]) == expected, month


@given(
    usage=st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 10**9)), min_size=2, max_size=2),
    card=rate_cards(),
    credits=st.lists(st.decimals(min_value=-1000, max_value=1000, places=2), max_size=3),
)
def test_statements_with_prior_periods_and_credits_keep_two_decimals_and_total_the_rounded_lines(
    usage: list[tuple[int, int]], card: RateCard, credits: list[Decimal]
) -> None:
    billed, current = (
        UsageReport("acc", MONTHS[0], (ServiceUsage("svc-a", minutes, messages),)) for minutes, messages in usage
    )
    prior = (ledger.PriorPeriod(billed, current, card),)
    adjustments = tuple(ledger.Adjustment(amount, "credit") for amount in credits if amount)
    statement, _ = ledger.StatementInputs(UsageReport("acc", MONTHS[1]), card, prior, adjustments).build("draft")

    body = statement.to_json()

    assert all(TWO_DECIMALS.fullmatch(line["amount"]) for line in body["lines"])
    assert Decimal(body["total"]) == exact_sum(Decimal(line["amount"]) for line in body["lines"])


@given(card=rate_cards())
def test_rate_card_json_round_trips(card: RateCard) -> None:
    assert card_from_json(card_to_json(card)) == card


@given(
    versions=st.lists(
        st.tuples(st.sampled_from([None, "acc", "other"]), st.sampled_from(MONTHS)), max_size=8, unique_by=lambda v: v
    ),
    month=st.sampled_from(MONTHS),
)
def test_the_card_in_force_is_the_newest_applicable_override_else_the_newest_default(
    versions: list[tuple[str | None, Month]], month: Month
) -> None:
    stored = [
        CardVersion(index, account, effective, _card(f"{account}-{effective}"))
        for index, (account, effective) in enumerate(versions)
    ]

    chosen = card_in_force(stored, "acc", month)

    overrides = [v for v in stored if v.account_id == "acc" and v.effective_month <= month]
    defaults = [v for v in stored if v.account_id is None and v.effective_month <= month]
    expected = max(overrides or defaults, key=lambda v: (v.effective_month, v.version_id), default=None)
    assert chosen.name == (expected.card.name if expected else "default")


def _card(name: str) -> RateCard:
    return RateCard(
        name, "USD", DEFAULT_RATE_CARD.connection_minutes, DEFAULT_RATE_CARD.messages, DEFAULT_RATE_CARD.bandwidth
    )
