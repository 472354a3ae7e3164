"""Money is ``Decimal``, and this module owns every quantize rule (DESIGN.md "Billing rules").

- Decimals are built from ``str`` or ``int`` only, never from ``float``.
- Unit prices keep 6 decimals; line amounts are rounded half-up to the cent; totals are
  sums of already rounded lines. "Half-up" is ``ROUND_HALF_UP``: ties go away from zero,
  so ``0.005 -> 0.01`` and ``-0.005 -> -0.01``.
- Arithmetic before rounding is exact: the helpers below run in a 100-digit context that
  traps ``Inexact``, so a product or sum that could not be represented fails loudly
  instead of being rounded silently by the default 28-digit context.
- Built-in ``round()`` is never used.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import (
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)
from functools import reduce

from billing.domain.exceptions import InvalidAmount

CENT = Decimal("0.01")
UNIT_PRICE_QUANTUM = Decimal("0.000001")
UNIT_PRICE_PLACES = 6
ZERO = Decimal("0")

_PRECISION = 100
_ROUNDING = Context(prec=_PRECISION, rounding=ROUND_HALF_UP, traps=[InvalidOperation, DivisionByZero, Overflow])
_EXACT = Context(prec=_PRECISION, rounding=ROUND_HALF_UP, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])


def to_decimal(value: str | int) -> Decimal:
    """Build a finite Decimal from a ``str`` or ``int``; a float is a TypeError.

    Example: ``to_decimal("2.675") == Decimal("2.675")`` exactly, where
    ``Decimal(2.675)`` would be 2.67499999999999982236431605997495353221893310546875.
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"money is built from str or int only, got {type(value).__name__}")
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise InvalidAmount(f"not a decimal number: {value!r}") from None
    if not result.is_finite():
        raise InvalidAmount(f"not a finite decimal number: {value!r}")
    return result


def unit_price(value: Decimal) -> Decimal:
    """Quantize a unit price to 6 decimals, half-up.

    Example: ``unit_price(Decimal("0.0000005")) == Decimal("0.000001")``.
    """
    return _quantize(value, UNIT_PRICE_QUANTUM)


def cents(value: Decimal) -> Decimal:
    """Round an amount half-up (ties away from zero) to the cent.

    Example: ``cents(Decimal("1.005")) == Decimal("1.01")`` and ``cents(Decimal("1.0049")) == Decimal("1.00")``.
    """
    return _quantize(value, CENT)


def format_amount(value: Decimal) -> str:
    """Write an amount with exactly 2 decimals, rounded half-up, never in exponent notation.

    Example: ``format_amount(Decimal("3")) == "3.00"``; ``format_amount(Decimal("-0.001")) == "0.00"``.
    """
    return format(cents(value), "f")


def format_unit_price(value: Decimal) -> str:
    """Write a unit price with exactly 6 decimals, never in exponent notation.

    Example: ``format_unit_price(Decimal("1E+2")) == "100.000000"``.
    """
    return format(unit_price(value), "f")


def has_places(value: Decimal, places: int) -> bool:
    """Tell whether a finite decimal needs no more than ``places`` decimals.

    Example: ``has_places(Decimal("1.50"), 2)`` is true, ``has_places(Decimal("1.005"), 2)`` is not.
    """
    return value.is_finite() and _quantize(value, Decimal(1).scaleb(-places)) == value


def exact_product(left: Decimal, right: Decimal) -> Decimal:
    """Multiply two decimals exactly (``Inexact`` is trapped, nothing is rounded)."""
    return _EXACT.multiply(left, right)


def exact_sum(values: Iterable[Decimal]) -> Decimal:
    """Add decimals exactly (``Inexact`` is trapped); the empty sum is 0."""
    return reduce(_EXACT.add, values, ZERO)


def exact_difference(left: Decimal, right: Decimal) -> Decimal:
    """Subtract ``right`` from ``left`` exactly (``Inexact`` is trapped, nothing is rounded)."""
    return _EXACT.subtract(left, right)


def exact_shift(value: Decimal, places: int) -> Decimal:
    """Multiply exactly by ``10 ** places``: ``exact_shift(Decimal(1234567890), -9) == Decimal("1.234567890")``."""
    return _EXACT.scaleb(value, places)


def exact_places(value: Decimal, places: int) -> Decimal:
    """Write a decimal with exactly ``places`` decimals; losing a digit raises ``decimal.Inexact``.

    Example: ``exact_places(Decimal("1E+2"), 0) == Decimal("100")``.
    """
    return value.quantize(Decimal(1).scaleb(-places), context=_EXACT)


def _quantize(value: Decimal, quantum: Decimal) -> Decimal:
    result = value.quantize(quantum, context=_ROUNDING)
    # A tiny negative amount rounds to "-0.00"; money has no negative zero.
    return result.copy_abs() if result.is_zero() else result
