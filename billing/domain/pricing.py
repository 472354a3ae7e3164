"""Graduated pricing: each band of a quantity is priced at its own tier's unit price.

Quantities here are in billing units (millions of minutes, millions of messages, GB), the
same units as ``Tier.up_to``. The amounts returned are exact and unrounded; rounding to
the cent happens once per statement line (``billing.domain.money.cents``).
"""

from __future__ import annotations

from decimal import Decimal

from billing.domain.exceptions import InvalidQuantity
from billing.domain.money import ZERO, exact_difference, exact_product, exact_sum, to_decimal
from billing.domain.rate_cards import Rate, Tier

Band = tuple[Decimal, Tier]


def tier_bands(quantity: Decimal, rate: Rate) -> list[Band]:
    """Split a quantity into the bands of a rate's tiers, leaving out empty bands.

    Tier *i* covers ``(up_to of tier i-1, up_to of tier i]`` (the first starts at 0, the
    last is unbounded); the part of the quantity in that interval is its band.
    Example: tiers ``[(100, 2.00), (500, 1.50), (None, 1.00)]`` and quantity 150 give
    ``[(100, tier 1), (50, tier 2)]``; quantity 0 gives ``[]``.
    """
    if not quantity.is_finite() or quantity < 0:
        raise InvalidQuantity(f"a quantity to price must be zero or more, got {quantity}")
    bands: list[Band] = []
    lower = ZERO
    for tier in rate.tiers:
        upper = quantity if tier.up_to is None else min(quantity, to_decimal(tier.up_to))
        if upper > lower:
            bands.append((exact_difference(upper, lower), tier))
        if upper >= quantity:
            break
        lower = upper
    return bands


def graduated_amount(quantity: Decimal, rate: Rate) -> Decimal:
    """Price a quantity: the sum over its bands of band quantity x band unit price, unrounded.

    The amount is continuous in the quantity (no jump at a tier boundary) and never
    decreases as the quantity grows, because prices are non-negative.
    Example: tiers ``[(100, 2.00), (500, 1.50), (None, 1.00)]`` and quantity 150 cost
    ``100 x 2.00 + 50 x 1.50 = 275.00``; a flat rate of 0.12 on 1.5 costs 0.18.
    """
    return exact_sum(exact_product(band, tier.unit_price) for band, tier in tier_bands(quantity, rate))
