"""Rate cards: the prices an account pays for connection time, messages and bandwidth.

A ``Rate`` is one or more ``Tier``s. Each tier prices one band of the account's monthly
quantity, measured in the kind's *billing unit*: millions of connection minutes,
millions of messages, and gigabytes (10^9 bytes) of bandwidth out. ``Tier.up_to`` is the
band's upper bound in billing units (``None`` = unbounded); a rate with a single
unbounded tier is flat.

Rules, checked when a value is built (``InvalidRateCard`` otherwise):
- a rate has at least one tier, only its last tier is unbounded, bounds strictly increase
  and are positive integers;
- unit prices are finite, non-negative Decimals with at most 6 decimals;
- a currency is a three-letter upper-case ISO 4217 code.

``DEFAULT_RATE_CARD`` holds fanmeter's own default prices, chosen for this project; they
are **not** Fastly's published prices. Later work lets operators override them per account
(contract rates) by giving that account another ``RateCard``:

- connection time: 1.000000 USD per million minutes;
- messages (published-in + delivered-out): 2.000000 USD per million messages;
- bandwidth out: 0.120000 USD per GB (10^9 bytes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from billing.domain.exceptions import InvalidRateCard
from billing.domain.money import UNIT_PRICE_PLACES, has_places, to_decimal

_CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True, slots=True)
class Tier:
    """One band of a rate: quantities up to ``up_to`` billing units cost ``unit_price`` each."""

    up_to: int | None
    unit_price: Decimal

    def __post_init__(self) -> None:
        if not isinstance(self.unit_price, Decimal):
            raise TypeError(f"unit_price must be a Decimal, got {type(self.unit_price).__name__}")
        if self.up_to is not None and (isinstance(self.up_to, bool) or not isinstance(self.up_to, int)):
            raise InvalidRateCard(f"tier bound must be an integer or None, got {self.up_to!r}")
        if self.up_to is not None and self.up_to <= 0:
            raise InvalidRateCard(f"tier bound must be positive, got {self.up_to}")
        if not self.unit_price.is_finite() or self.unit_price < 0:
            raise InvalidRateCard(f"unit price must be a non-negative number, got {self.unit_price}")
        if not has_places(self.unit_price, UNIT_PRICE_PLACES):
            raise InvalidRateCard(f"unit price keeps at most 6 decimals, got {self.unit_price}")


@dataclass(frozen=True, slots=True)
class Rate:
    """The tiers pricing one kind of usage; bounds strictly increase and the last is unbounded."""

    tiers: tuple[Tier, ...]

    def __post_init__(self) -> None:
        if not self.tiers:
            raise InvalidRateCard("a rate needs at least one tier")
        if self.tiers[-1].up_to is not None:
            raise InvalidRateCard("the last tier of a rate must be unbounded (up_to=None)")
        bounds = [tier.up_to for tier in self.tiers[:-1] if tier.up_to is not None]
        if len(bounds) != len(self.tiers) - 1:
            raise InvalidRateCard("only the last tier of a rate may be unbounded")
        if any(upper <= lower for lower, upper in zip(bounds, bounds[1:], strict=False)):
            raise InvalidRateCard(f"tier bounds must strictly increase, got {bounds}")

    @classmethod
    def flat(cls, unit_price: Decimal) -> Rate:
        """Build a rate with one price for every unit."""
        return cls((Tier(None, unit_price),))

    @property
    def is_flat(self) -> bool:
        """Tell whether every unit costs the same (a single unbounded tier)."""
        return len(self.tiers) == 1


@dataclass(frozen=True, slots=True)
class RateCard:
    """An account's prices: one rate per kind of usage, all in one currency."""

    name: str
    currency: str
    connection_minutes: Rate
    messages: Rate
    bandwidth: Rate

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise InvalidRateCard("a rate card needs a name")
        if not _CURRENCY_PATTERN.match(self.currency):
            raise InvalidRateCard(f"currency must be a three-letter ISO 4217 code, got {self.currency!r}")


DEFAULT_RATE_CARD = RateCard(
    name="default",
    currency="USD",
    connection_minutes=Rate.flat(to_decimal("1.000000")),
    messages=Rate.flat(to_decimal("2.000000")),
    bandwidth=Rate.flat(to_decimal("0.120000")),
)
