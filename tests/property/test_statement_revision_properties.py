"""Property of skipping unchanged history (``ledger.months_to_recheck``): it never changes a statement.

A pure model of the service: usage of any month keeps arriving in random waves, each write
raising that month's revision as ``metering.repository.add_usage`` does; month after month a
draft is built, more usage may arrive, and the draft is finalized as built (stale or not).
Every draft is built twice, comparing every carried month (the rule itself) and comparing only
the months ``months_to_recheck`` names (what ``billing.statements.load_inputs`` does): the two
statements and the usage they bill must be identical.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.domain import ledger
from billing.domain.rate_cards import DEFAULT_RATE_CARD
from billing.domain.statements import Statement
from kernel.instants import Month
from metering.domain.usage import ServiceUsage, UsageReport

MONTHS = [Month(2026, m) for m in range(1, 8)]
Writes = list[tuple[int, str, int]]  # (months back from the statement's, service, minutes added)


def writes() -> st.SearchStrategy[Writes]:
    return st.lists(st.tuples(st.integers(0, 4), st.sampled_from(("svc-a", "svc-b")), st.integers(1, 3 * 10**6)))


class World:
    """Usage per month and service, each month's revision, and the finalized statements."""

    def __init__(self) -> None:
        self.usage: dict[Month, dict[str, int]] = {}
        self.revisions: dict[Month, int] = {}
        self.finalized: dict[Month, tuple[dict[Month, UsageReport], dict[str, int]]] = {}

    def write(self, month: Month, service: str, minutes: int) -> None:
        services = self.usage.setdefault(month, {})
        services[service] = services.get(service, 0) + minutes
        self.revisions[month] = self.revisions.get(month, 0) + 1

    def report(self, month: Month) -> UsageReport:
        services = self.usage.get(month, {})
        return UsageReport("acc", month, tuple(ServiceUsage(s, services[s], 0, 0, 0) for s in sorted(services)))

    def build(self, month: Month, *, skip: bool) -> tuple[Statement, dict[str, Any], dict[str, int]]:
        carried = ledger.carried_months(dict.fromkeys(self.finalized, ledger.FINALIZED), month)
        previous = self.finalized.get(ledger.previous_month(month))
        checked = previous[1] if previous else None
        compared = ledger.months_to_recheck(carried, checked, self.revisions) if skip else carried
        snapshots = {m: billed for m, (billed, _) in self.finalized.items()}
        prior = tuple(
            ledger.PriorPeriod(
                ledger.latest_billed(snapshots, m) or UsageReport("acc", m), self.report(m), DEFAULT_RATE_CARD
            )
            for m in compared
        )
        revisions = {str(m): self.revisions.get(m, 0) for m in [month, *carried]}
        statement, billed = ledger.StatementInputs(self.report(month), DEFAULT_RATE_CARD, prior).build("draft")
        return statement, billed, revisions


@settings(max_examples=80, deadline=None)
@given(
    before_draft=st.lists(writes(), min_size=len(MONTHS), max_size=len(MONTHS)),
    after_draft=st.lists(writes(), min_size=len(MONTHS), max_size=len(MONTHS)),
)
def test_skipping_months_whose_revision_did_not_move_builds_the_same_statements(
    before_draft: list[Writes], after_draft: list[Writes]
) -> None:
    world = World()
    for index, month in enumerate(MONTHS):
        for back, service, minutes in before_draft[index]:
            world.write(MONTHS[max(index - back, 0)], service, minutes)
        full = world.build(month, skip=False)
        skipped = world.build(month, skip=True)
        assert skipped[0] == full[0]
        assert skipped[1] == full[1]
        # Usage still arriving while the draft waits for review: it is finalized as built.
        for back, service, minutes in after_draft[index]:
            world.write(MONTHS[max(index - back, 0)], service, minutes)
        world.finalized[month] = (ledger.snapshot_from_json("acc", skipped[1]), skipped[2])


def test_months_without_a_recorded_revision_are_all_compared() -> None:
    carried = [Month(2026, 1), Month(2026, 2)]
    assert ledger.months_to_recheck(carried, None, {}) == carried
    assert ledger.months_to_recheck(carried, {"2026-02": 1}, {Month(2026, 2): 1}) == [Month(2026, 1)]
    assert ledger.months_to_recheck(carried, {"2026-01": 3, "2026-02": 1}, {Month(2026, 1): 4, Month(2026, 2): 1}) == [
        Month(2026, 1)
    ]
