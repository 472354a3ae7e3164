"""Rate cards as JSON, and which card is in force for an account in a month.

The JSON of a card (the API body, and the ``card`` column of ``rate_card_version``)::

    {"name": "contract-2026", "currency": "USD",
     "connection_minutes": [{"up_to": 100, "unit_price": "1.000000"}, {"up_to": null, "unit_price": "0.800000"}],
     "messages": [{"up_to": null, "unit_price": "2.000000"}],
     "bandwidth": [{"up_to": null, "unit_price": "0.120000"}]}

Unit prices are decimal *strings* (a JSON number would pass through a float); tier bounds
are integers in billing units (millions of minutes, millions of messages, GB).

Resolution rule (``card_in_force``): for (account, month) the newest contract override with
``effective_month <= month`` wins; without one, the newest default-card version with
``effective_month <= month``; without one, ``DEFAULT_RATE_CARD``. "Newest" is the latest
effective month, and among versions of the same month the one created last, so a
correction is a new version and no row is ever updated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from billing.domain.exceptions import InvalidAmount, InvalidRateCard
from billing.domain.money import format_unit_price, to_decimal
from billing.domain.rate_cards import DEFAULT_RATE_CARD, Rate, RateCard, Tier
from kernel.instants import Month

RATE_KINDS = ("connection_minutes", "messages", "bandwidth")
_CARD_KEYS = frozenset({"name", "currency", *RATE_KINDS})
_TIER_KEYS = frozenset({"up_to", "unit_price"})


def card_to_json(card: RateCard) -> dict[str, Any]:
    """Write a rate card as its JSON (prices as 6-decimal strings).

    Example: the default card's messages rate is ``[{"up_to": None, "unit_price": "2.000000"}]``.
    """
    return {
        "name": card.name,
        "currency": card.currency,
        **{kind: [_tier_json(tier) for tier in getattr(card, kind).tiers] for kind in RATE_KINDS},
    }


def card_from_json(data: Mapping[str, Any]) -> RateCard:
    """Read and validate a rate card's JSON; anything wrong is ``InvalidRateCard`` naming the field.

    Example: ``{"up_to": 0, ...}`` fails with "connection_minutes[0].up_to: tier bound must be positive, got 0".
    """
    if not isinstance(data, Mapping):
        raise InvalidRateCard("a rate card is a JSON object")
    _check_keys("rate card", data, _CARD_KEYS)
    name, currency = data["name"], data["currency"]
    if not isinstance(name, str) or not isinstance(currency, str):
        raise InvalidRateCard("name and currency are strings")
    return RateCard(name, currency, *(_rate(kind, data[kind]) for kind in RATE_KINDS))


def _tier_json(tier: Tier) -> dict[str, Any]:
    return {"up_to": tier.up_to, "unit_price": format_unit_price(tier.unit_price)}


def _check_keys(where: str, data: Mapping[str, Any], expected: frozenset[str]) -> None:
    missing, unknown = sorted(expected - set(data)), sorted(set(data) - expected)
    if missing:
        raise InvalidRateCard(f"{where}: missing field {', '.join(missing)}")
    if unknown:
        raise InvalidRateCard(f"{where}: unknown field {', '.join(unknown)}")


def _rate(kind: str, tiers: Any) -> Rate:
    if not isinstance(tiers, list) or not tiers:
        raise InvalidRateCard(f"{kind}: a non-empty list of tiers is required")
    built = tuple(_tier(f"{kind}[{index}]", tier) for index, tier in enumerate(tiers))
    try:
        return Rate(built)
    except InvalidRateCard as error:
        raise InvalidRateCard(f"{kind}: {error}") from None


def _tier(where: str, data: Any) -> Tier:
    if not isinstance(data, Mapping):
        raise InvalidRateCard(f"{where}: a tier is an object with up_to and unit_price")
    _check_keys(where, data, _TIER_KEYS)
    price = data["unit_price"]
    if not isinstance(price, str):
        raise InvalidRateCard(f'{where}.unit_price: write prices as decimal strings, e.g. "1.000000"')
    try:
        return Tier(data["up_to"], _price(price))
    except InvalidRateCard as error:
        raise InvalidRateCard(f"{where}: {error}") from None


def _price(text: str) -> Decimal:
    try:
        return to_decimal(text)
    except InvalidAmount as error:
        raise InvalidRateCard(str(error)) from None


@dataclass(frozen=True, slots=True)
class CardVersion:
    """One stored version of a card: the default (``account_id`` None) or an account's override."""

    version_id: int
    account_id: str | None
    effective_month: Month
    card: RateCard


def card_in_force(versions: Iterable[CardVersion], account_id: str | None, month: Month) -> RateCard:
    """Pick the card that prices ``account_id``'s ``month`` (rule: module docstring); None: the default.

    Example: a default version from 2026-01 and an override from 2026-04 price 2026-03 with
    the default version and 2026-04 onwards with the override.
    """
    version = version_in_force(versions, account_id, month)
    return DEFAULT_RATE_CARD if version is None else version.card


def version_in_force(versions: Iterable[CardVersion], account_id: str | None, month: Month) -> CardVersion | None:
    """The stored version that prices ``account_id``'s ``month``, or None for the built-in default."""
    overrides, defaults = [], []
    for version in versions:
        if version.effective_month > month:
            continue
        if version.account_id == account_id:
            overrides.append(version)
        elif version.account_id is None:
            defaults.append(version)
    for candidates in (overrides, defaults):
        if candidates:
            return max(candidates, key=lambda v: (v.effective_month, v.version_id))
    return None
