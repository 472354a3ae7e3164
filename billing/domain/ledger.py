"""The statement lifecycle's rules: when drafts are due, numbering, content hashes, prior periods.

Lifecycle (DESIGN.md "Billing rules"): ``open`` (computed on read, an estimate) -> ``draft``
(stored once the month has closed and the grace period has passed) -> ``finalized``
(numbered, hashed, immutable). docs/decisions.md gives the reasons; the rules:

- **Due month.** The draft of month M is due at the first instant of M+1 plus the grace
  period. ``due_month(now, grace)`` is the latest month whose draft is due.
- **Number.** From the statement sequence of ``billing.domain.numbering`` (``FM-2026-000123``:
  gapless, never reset within the year of finalization). Statements finalized before that rule
  keep their ``FM-YYYY-MM-NNNNNN``.
- **Content hash.** SHA-256 (hex) of the canonical JSON of the finalized body (status
  ``finalized``, its number, ``content_hash`` null): keys sorted, no spaces, UTF-8. The credit
  notes shown beside it (``NOT_HASHED``) are not part of it.
- **Prior periods.** A statement records in ``billed_usage`` the usage it bills: its own
  month, and every earlier month it carries a prior-period line for. The statement of M
  carries every finalized month F < M such that all months between F and M are finalized
  too (M is the next statement that can still change). The line's amount is the usage
  subtotal of F's current usage minus that of F's latest billed snapshot, both priced
  with F's rate card, so the amount is a difference of rounded lines: exact cents. A
  late event therefore lands on exactly one statement, and nothing finalized changes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any

from billing.domain.exceptions import InvalidAmount
from billing.domain.money import exact_difference, format_amount, has_places, to_decimal
from billing.domain.rate_cards import RateCard
from billing.domain.statements import (
    COMPUTE_NOTE,
    ESTIMATE_NOTE,
    Statement,
    StatementLine,
    adjustment_line,
    build_statement,
)
from kernel.instants import MICROS_PER_SECOND, Month
from metering.domain.usage import ServiceUsage, UsageReport

FINALIZED = "finalized"
NOT_HASHED = ("credit_notes", "credited", "remaining")  # shown beside a finalized body, not part of it
_USAGE_FIELDS = ("connection_minutes", "messages_published", "messages_delivered", "bytes_out")


@lru_cache(maxsize=4096)
def previous_month(month: Month) -> Month:
    """The month before: ``previous_month(Month(2026, 1)) == Month(2025, 12)``.

    Cached: a batch of drafts walks the same few months back for every account.
    """
    return Month(month.year - 1, 12) if month.month == 1 else Month(month.year, month.month - 1)


def draft_due_us(month: Month, grace_hours: int) -> int:
    """The instant (UTC microseconds) from which ``month``'s draft is due: its end plus the grace period."""
    return month.end_us + grace_hours * 3600 * MICROS_PER_SECOND


def due_month(now_us: int, grace_hours: int) -> Month:
    """The latest month whose draft is due at ``now_us``.

    Example: with 72 hours of grace, March 2026's draft is due from 2026-04-04T00:00Z; at
    2026-04-03T23:59Z the latest due month is still February.
    """
    return previous_month(Month.of(now_us - grace_hours * 3600 * MICROS_PER_SECOND))


def content_hash(body: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a statement body, its own ``content_hash`` taken as null.

    The keys a statement's JSON gains after finalization (``NOT_HASHED``: its credit notes, what
    they credited, what remains) are left out: the hash covers the finalized body only.
    """
    hashed = {key: value for key, value in body.items() if key not in NOT_HASHED}
    canonical = json.dumps({**hashed, "content_hash": None}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def finalized_body(body: Mapping[str, Any], number: str) -> dict[str, Any]:
    """The body of a draft once finalized: status, number and content hash set; nothing else changes."""
    finalized = {**body, "status": FINALIZED, "number": number, "content_hash": None}
    return {**finalized, "content_hash": content_hash(finalized)}


def carried_months(statuses: Mapping[Month, str], month: Month) -> list[Month]:
    """The finalized months whose prior-period lines go on ``month``'s statement, oldest first.

    Example: with 2026-01 and 2026-02 finalized and 2026-03 a draft, the statement of
    2026-03 carries [2026-01, 2026-02]; the statement of 2026-04 carries none.
    """
    carried: list[Month] = []
    candidate = previous_month(month)
    while statuses.get(candidate) == FINALIZED:
        carried.append(candidate)
        candidate = previous_month(candidate)
    return carried[::-1]


def months_to_recheck(
    carried: Sequence[Month], checked: Mapping[str, int] | None, revisions: Mapping[Month, int]
) -> list[Month]:
    """The carried months whose usage may differ from what was last billed of them, oldest first.

    ``checked`` is what the previous month's finalized statement recorded: the usage revision
    it read each month at (None: built before revisions were recorded). A month whose revision
    is still the one recorded has not been written since that statement compared it with its
    latest billed snapshot (or billed it): it equals that snapshot and gets no line. Any other
    month (moved, never recorded) is read and compared in full. ``revisions`` lacks months never
    written (revision 0).

    Example: carried [2026-01, 2026-02], checked {"2026-01": 3, "2026-02": 1} and revisions
    {2026-01: 4, 2026-02: 1} give [2026-01]: a late event moved January.
    """
    if checked is None:
        return list(carried)
    return [month for month in carried if checked.get(str(month)) != revisions.get(month, 0)]


def snapshot_json(reports: Iterable[UsageReport]) -> dict[str, Any]:
    """Write billed usage as ``{"YYYY-MM": [{service_id, connection_minutes, ...}, ...]}``."""
    return {
        str(report.month): [
            {"service_id": s.service_id, **{name: getattr(s, name) for name in _USAGE_FIELDS}} for s in report.services
        ]
        for report in reports
    }


def snapshot_from_json(account_id: str, data: Mapping[str, Any]) -> dict[Month, UsageReport]:
    """Read billed usage written by ``snapshot_json``."""
    reports = {}
    for text, rows in data.items():
        month = _month(text)
        services = tuple(ServiceUsage(row["service_id"], *(int(row[name]) for name in _USAGE_FIELDS)) for row in rows)
        reports[month] = UsageReport(account_id, month, services)
    return reports


@lru_cache(maxsize=4096)
def _month(text: str) -> Month:
    """``Month.parse``, cached: a batch of drafts reads the same few months thousands of times."""
    return Month.parse(text)


def latest_billed(finalized: Mapping[Month, Mapping[Month, UsageReport]], month: Month) -> UsageReport | None:
    """The usage of ``month`` as last billed: the snapshot of the newest finalized statement holding one."""
    holders = [statement_month for statement_month, billed in finalized.items() if month in billed]
    return finalized[max(holders)][month] if holders else None


@dataclass(frozen=True, slots=True)
class PriorPeriod:
    """A finalized month as billed so far and as metered now, with the card that prices it."""

    billed: UsageReport
    current: UsageReport
    card: RateCard


def prior_period_line(period: PriorPeriod) -> StatementLine | None:
    """The adjustment line for usage of a finalized month metered since it was last billed, if any.

    Example: 1,000,000 more minutes of 2026-02 at 1.000000 USD per million give the line
    "Prior-period adjustment for 2026-02: +1,000,000 minutes, +0 messages, +0 bytes" of 1.00.
    """
    billed, current = period.billed, period.current
    deltas = [_total(current, name) - _total(billed, name) for name in ("connection_minutes", "messages", "bytes_out")]
    if not any(deltas):
        return None
    amount = exact_difference(_subtotal(current, period.card), _subtotal(billed, period.card))
    minutes, messages, bytes_out = deltas
    description = (
        f"Prior-period adjustment for {current.month}: {minutes:+,} minutes, {messages:+,} messages, "
        f"{bytes_out:+,} bytes ({format_amount(amount)} {period.card.currency})"
    )
    return adjustment_line(amount, description)


def _total(report: UsageReport, name: str) -> int:
    value: int = getattr(report, name)
    return value


def _subtotal(usage: UsageReport, card: RateCard) -> Decimal:
    return build_statement(usage, card, "draft").subtotal


@dataclass(frozen=True, slots=True)
class Adjustment:
    """An adjustment or credit finance added to a month (a credit is negative)."""

    amount: Decimal
    reason: str
    service_id: str | None = None

    def line(self) -> StatementLine:
        """The statement line of this adjustment."""
        kind = "Credit" if self.amount < 0 else "Adjustment"
        return adjustment_line(self.amount, f"{kind}: {self.reason}", self.service_id)


def compose(
    usage: UsageReport,
    card: RateCard,
    status: str,
    prior: Sequence[StatementLine] = (),
    adjustments: Sequence[Adjustment] = (),
) -> Statement:
    """A month's statement: its usage lines, then prior-period lines, then finance's adjustments.

    Example: usage of 1.23 and a credit of -0.50 total 0.73, the subtotal staying 1.23.
    """
    statement = build_statement(usage, card, status)
    lines = (*statement.lines, *prior, *(adjustment.line() for adjustment in adjustments))
    return Statement(statement.account_id, statement.month, status, statement.currency, lines, notes=statement.notes)


def adjustment_amount(text: str) -> Decimal:
    """Read an adjustment amount: a decimal string to the cent, not zero; a credit is negative.

    Example: ``adjustment_amount("-5.00") == Decimal("-5.00")``; ``"1.005"`` is refused.
    """
    amount = to_decimal(text)
    if not has_places(amount, 2):
        raise InvalidAmount(f"an adjustment is to the cent (2 decimals at most), got {text!r}")
    if amount.is_zero():
        raise InvalidAmount("an adjustment of zero changes nothing")
    return amount


def statement_from_json(body: Mapping[str, Any]) -> Statement:
    """Read a stored statement body (DESIGN.md's statement JSON) back into a ``Statement``.

    Subtotal and total are derived from the lines, so they come back equal to the stored ones.
    """
    lines = tuple(
        StatementLine(
            line["service_id"],
            line["kind"],
            to_decimal(line["quantity"]),
            line["unit"],
            to_decimal(line["unit_price"]),
            to_decimal(line["amount"]),
            line["description"],
        )
        for line in body["lines"]
    )
    status = body["status"]
    notes = (COMPUTE_NOTE, ESTIMATE_NOTE) if status == "open" else (COMPUTE_NOTE,)
    return Statement(
        body["account_id"],
        Month.parse(body["month"]),
        status,
        body["currency"],
        lines,
        number=body["number"],
        content_hash=body["content_hash"],
        notes=notes,
    )


@dataclass(frozen=True, slots=True)
class StatementInputs:
    """Everything one account's statement of one month is computed from."""

    usage: UsageReport
    card: RateCard
    prior: tuple[PriorPeriod, ...] = ()
    adjustments: tuple[Adjustment, ...] = ()
    # The usage revision ("YYYY-MM" -> n) of its own month and of every carried month, as read
    # before their usage; stored with the statement for ``months_to_recheck`` of later drafts.
    revisions: Mapping[str, int] = field(default_factory=dict)

    def build(self, status: str) -> tuple[Statement, dict[str, Any]]:
        """The statement, and the usage it bills as JSON: its own month and each carried month that changed.

        A carried month whose usage did not change since it was last billed is left out of the
        snapshot: its latest billed snapshot stays the same either way, and the stored history
        stays linear in the number of months.
        """
        lines = {period.current.month: prior_period_line(period) for period in self.prior}
        statement = compose(self.usage, self.card, status, [line for line in lines.values() if line], self.adjustments)
        changed = [period.current for period in self.prior if lines[period.current.month] is not None]
        return statement, snapshot_json([self.usage, *changed])
