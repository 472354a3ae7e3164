"""Statements: one account's usage for one UTC month, priced (DESIGN.md "Statement JSON").

Pricing decisions, applied by ``build_statement``:

- **Units.** Connection time lines count minutes (an integer, unit ``minute``) priced per
  million minutes; message lines count published-in + delivered-out messages (an integer,
  unit ``message``) priced per million messages; bandwidth lines count bytes out written in
  GB (10^9 bytes) with all 9 decimals, so the quantity is exact (1,234,567,890 bytes is
  ``1.234567890`` GB), priced per GB. The amount is quantity / units-per-price x price.
- **Flat rate (one tier): one line per service.** Services are sorted by id and each line
  carries its ``service_id``; a service with no usage of that kind gets no line. Each
  line's amount is rounded half-up to the cent, so the account pays the sum of per-service
  rounded amounts, which may differ by a few cents from rounding the account total.
- **Graduated rate: one line per tier band.** Tiers apply to the account's monthly total
  of that kind (volume belongs to the account, not to a service). Each band with quantity
  becomes a line with ``service_id`` null whose description names the band; the
  per-service breakdown is in the usage report. Each band line is rounded to the cent.
- **Totals.** ``subtotal`` is the sum of the rounded usage lines, ``total`` adds the
  adjustment and credit lines. A month with no usage has no lines and totals ``0.00``.
- Compute is billed separately; every statement carries a note saying so (``notes``),
  which CSV and table renderings print and the JSON leaves out to keep DESIGN.md's keys.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from billing.domain.exceptions import InvalidStatement
from billing.domain.money import (
    UNIT_PRICE_PLACES,
    cents,
    exact_places,
    exact_product,
    exact_shift,
    exact_sum,
    format_amount,
    format_unit_price,
    has_places,
    to_decimal,
    unit_price,
)
from billing.domain.pricing import graduated_amount, tier_bands
from billing.domain.rate_cards import Rate, RateCard, Tier
from kernel.instants import Month
from metering.domain.usage import ServiceUsage, UsageReport

ADJUSTMENT = "adjustment"
KINDS = ("connection_minutes", "messages", "bandwidth", ADJUSTMENT)
STATUSES = ("open", "draft", "finalized")
COMPUTE_NOTE = "Compute is billed separately and is not part of this statement."
ESTIMATE_NOTE = "Open statement: month to date, an estimate until the month closes."
CSV_HEADER = ("service_id", "kind", "quantity", "unit", "unit_price", "amount", "description")


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One priced line: usage of one kind (per service or per tier band), or an adjustment."""

    service_id: str | None
    kind: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount: Decimal
    description: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidStatement(f"line kind must be one of {KINDS}, got {self.kind!r}")
        if not has_places(self.amount, 2):
            raise InvalidStatement(f"a line amount is rounded to the cent, got {self.amount}")
        if not has_places(self.unit_price, UNIT_PRICE_PLACES):
            raise InvalidStatement(f"a unit price keeps at most 6 decimals, got {self.unit_price}")

    def to_json(self) -> dict[str, Any]:
        """Render the line as DESIGN.md's statement line JSON (numbers as exact strings)."""
        return {
            "service_id": self.service_id,
            "kind": self.kind,
            "quantity": format(self.quantity, "f"),
            "unit": self.unit,
            "unit_price": format_unit_price(self.unit_price),
            "amount": format_amount(self.amount),
            "description": self.description,
        }

    def to_csv_row(self) -> list[str]:
        """Render the line as a CSV row in ``CSV_HEADER`` order (no service is an empty cell)."""
        values = self.to_json()
        return ["" if values[key] is None else str(values[key]) for key in CSV_HEADER]


@dataclass(frozen=True, slots=True)
class Statement:
    """An account's statement for one month: its lines, totals and lifecycle status."""

    account_id: str
    month: Month
    status: str
    currency: str
    lines: tuple[StatementLine, ...] = ()
    number: str | None = None
    content_hash: str | None = None
    notes: tuple[str, ...] = (COMPUTE_NOTE,)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise InvalidStatement(f"statement status must be one of {STATUSES}, got {self.status!r}")

    @property
    def subtotal(self) -> Decimal:
        """Sum of the rounded usage lines (everything but adjustments)."""
        return cents(exact_sum(line.amount for line in self.lines if line.kind != ADJUSTMENT))

    @property
    def total(self) -> Decimal:
        """Subtotal plus adjustment and credit lines."""
        adjustments = (line.amount for line in self.lines if line.kind == ADJUSTMENT)
        return cents(exact_sum((self.subtotal, *adjustments)))

    def to_json(self) -> dict[str, Any]:
        """Render the statement as DESIGN.md's statement JSON, exactly its keys."""
        return {
            "account_id": self.account_id,
            "month": str(self.month),
            "status": self.status,
            "currency": self.currency,
            "lines": [line.to_json() for line in self.lines],
            "subtotal": format_amount(self.subtotal),
            "total": format_amount(self.total),
            "number": self.number,
            "content_hash": self.content_hash,
        }

    def to_csv_rows(self) -> list[list[str]]:
        """Render the statement as CSV rows: header, lines, then subtotal and total rows."""
        return [
            list(CSV_HEADER),
            *(line.to_csv_row() for line in self.lines),
            ["", "subtotal", "", "", "", format_amount(self.subtotal), "Subtotal of usage lines"],
            ["", "total", "", "", "", format_amount(self.total), f"Total in {self.currency}"],
        ]


@dataclass(frozen=True, slots=True)
class _Meter:
    """How one kind of usage becomes lines: its units and where its quantity and rate live."""

    kind: str
    label: str
    unit: str
    plural: str
    billing_unit: str  # what one unit price buys, and what tier bounds count
    per_exponent: int  # line units per billing unit, as a power of ten (10^6 minutes)
    places: int  # decimals of the line quantity: raw quantity x 10^-places
    raw: Callable[[ServiceUsage], int]
    rate: Callable[[RateCard], Rate]


_METERS = (
    _Meter(
        kind="connection_minutes",
        label="Connection time",
        unit="minute",
        plural="minutes",
        billing_unit="million minutes",
        per_exponent=6,
        places=0,
        raw=lambda usage: usage.connection_minutes,
        rate=lambda card: card.connection_minutes,
    ),
    _Meter(
        kind="messages",
        label="Messages (published + delivered)",
        unit="message",
        plural="messages",
        billing_unit="million messages",
        per_exponent=6,
        places=0,
        raw=lambda usage: usage.messages,
        rate=lambda card: card.messages,
    ),
    _Meter(
        kind="bandwidth",
        label="Bandwidth out",
        unit="GB",
        plural="GB",
        billing_unit="GB",
        per_exponent=0,
        places=9,
        raw=lambda usage: usage.bytes_out,
        rate=lambda card: card.bandwidth,
    ),
)


def build_statement(usage: UsageReport, rate_card: RateCard, status: str) -> Statement:
    """Price an account's monthly usage with its rate card into a statement (rules: module docstring).

    Example: 1,234,567 minutes on service svc-1 at the default 1.000000 USD per million
    minutes is one line of ``1.234567 -> 1.23`` USD, and the subtotal and total are 1.23.
    """
    lines = tuple(line for meter in _METERS for line in _meter_lines(meter, usage, rate_card))
    notes = (COMPUTE_NOTE, ESTIMATE_NOTE) if status == "open" else (COMPUTE_NOTE,)
    return Statement(usage.account_id, usage.month, status, rate_card.currency, lines, notes=notes)


def adjustment_line(amount: Decimal, description: str, service_id: str | None = None) -> StatementLine:
    """Build an adjustment line of one amount in cents; a credit is a negative amount.

    Example: ``adjustment_line(Decimal("-5.00"), "Goodwill credit")`` lowers the total by 5.00.
    """
    return StatementLine(service_id, ADJUSTMENT, to_decimal(1), ADJUSTMENT, amount, amount, description)


def _meter_lines(meter: _Meter, usage: UsageReport, card: RateCard) -> list[StatementLine]:
    rate = meter.rate(card)
    if rate.is_flat:
        return [_service_line(meter, sid, raw, rate, card.currency) for sid, raw in _per_service(meter, usage)]
    total = sum(raw for _, raw in _per_service(meter, usage))
    billing_quantity = exact_shift(_line_quantity(meter, total), -meter.per_exponent)
    return [_band_line(meter, band, tier, rate, card.currency) for band, tier in tier_bands(billing_quantity, rate)]


def _per_service(meter: _Meter, usage: UsageReport) -> list[tuple[str, int]]:
    """Raw quantity per service id, sorted by id, services without usage left out."""
    sums: dict[str, int] = defaultdict(int)
    for service in usage.services:
        sums[service.service_id] += meter.raw(service)
    return [(sid, sums[sid]) for sid in sorted(sums) if sums[sid] != 0]


def _line_quantity(meter: _Meter, raw: int) -> Decimal:
    return exact_places(exact_shift(to_decimal(raw), -meter.places), meter.places)


def _service_line(meter: _Meter, service_id: str, raw: int, rate: Rate, currency: str) -> StatementLine:
    quantity = _line_quantity(meter, raw)
    price = rate.tiers[0].unit_price
    amount = cents(graduated_amount(exact_shift(quantity, -meter.per_exponent), rate))
    description = _description(meter, f"service {service_id}", quantity, price, currency)
    return StatementLine(service_id, meter.kind, quantity, meter.unit, unit_price(price), amount, description)


def _band_line(meter: _Meter, band: Decimal, tier: Tier, rate: Rate, currency: str) -> StatementLine:
    quantity = exact_places(exact_shift(band, meter.per_exponent), meter.places)
    amount = cents(exact_product(band, tier.unit_price))
    where = f"all services, {_band_name(meter, rate, tier)}"
    description = _description(meter, where, quantity, tier.unit_price, currency)
    return StatementLine(None, meter.kind, quantity, meter.unit, unit_price(tier.unit_price), amount, description)


def _band_name(meter: _Meter, rate: Rate, tier: Tier) -> str:
    """Name a tier band, e.g. ``tier 2 (100 to 500 million minutes)``.

    Band lines exist only for graduated rates, whose first tier is bounded and last is not.
    """
    index = rate.tiers.index(tier)
    lower = rate.tiers[index - 1].up_to if index else None
    if tier.up_to is None:
        span = f"over {lower:,} {meter.billing_unit}"
    elif lower is None:
        span = f"first {tier.up_to:,} {meter.billing_unit}"
    else:
        span = f"{lower:,} to {tier.up_to:,} {meter.billing_unit}"
    return f"tier {index + 1} ({span})"


def _description(meter: _Meter, where: str, quantity: Decimal, price: Decimal, currency: str) -> str:
    """E.g. ``Connection time, service svc-1: 1,234,567 minutes at 1.000000 USD per million minutes``."""
    amount_text = f"{format(quantity, ',f')} {meter.plural}"
    return f"{meter.label}, {where}: {amount_text} at {format_unit_price(price)} {currency} per {meter.billing_unit}"
