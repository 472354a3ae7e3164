"""How the console writes money, quantities and dates: the one place templates get them from."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from billing.domain.money import to_decimal

_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


def money(value: str | Decimal | None, currency: str = "USD") -> str:
    """``"1234.5"`` in USD is ``$1,234.50``; a credit keeps its minus sign before the symbol."""
    if value is None or value == "":
        return "—"
    amount = value if isinstance(value, Decimal) else to_decimal(value)
    symbol = _SYMBOLS.get(currency)
    text = f"{abs(amount):,.2f}"
    sign = "−" if amount < 0 else ""
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency}"


def number(value: int | str | Decimal | None) -> str:
    """Thousands separated: ``1234567`` is ``1,234,567``; decimals keep their places."""
    if value is None:
        return "—"
    if isinstance(value, str):
        value = to_decimal(value)
    if isinstance(value, Decimal) and value != value.to_integral_value():
        return f"{value:,}"
    return f"{int(value):,}"


_PLURALS = {"minute": "minutes", "message": "messages", "adjustment": "adjustments", "request": "requests"}


def quantity(value: int | str | Decimal | None, unit: str | None = None) -> str:
    """A quantity with its unit as a reader says it: ``918 minutes``, ``1 minute``, ``151,200 messages``,
    ``222 GB`` (a unit without a plural form, such as GB, stays as it is)."""
    text = number(value)
    if not unit or value is None:
        return text
    amount = to_decimal(value) if isinstance(value, str) else Decimal(value)
    return f"{text} {unit if amount == 1 else _PLURALS.get(unit, unit)}"


def gigabytes(byte_count: int | None) -> str:
    """Bytes as GB (10^9), two decimals: ``1_500_000_000`` is ``1.50 GB``."""
    if byte_count is None:
        return "—"
    return f"{Decimal(byte_count) / Decimal(10**9):,.2f} GB"


def when(value: datetime | str | None) -> str:
    """An instant in UTC to the minute: ``2026-12-04 19:30 UTC``."""
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def day(value: date) -> str:
    """A day as ``4 Dec``."""
    return f"{value.day} {value.strftime('%b')}"


def month_name(text: str) -> str:
    """``2026-11`` is ``November 2026``."""
    return date.fromisoformat(text + "-01").strftime("%B %Y")


FILTERS: dict[str, Any] = {
    "money": money,
    "number": number,
    "quantity": quantity,
    "gigabytes": gigabytes,
    "when": when,
    "day": day,
    "month_name": month_name,
}
