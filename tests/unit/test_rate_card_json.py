"""Rate cards as JSON, and the rule choosing the card in force for an account's month."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from billing.domain.exceptions import InvalidRateCard
from billing.domain.rate_card_json import CardVersion, card_from_json, card_in_force, card_to_json, version_in_force
from billing.domain.rate_cards import DEFAULT_RATE_CARD, Rate, RateCard, Tier
from kernel.instants import Month


def card_json(**changes: Any) -> dict[str, Any]:
    return {**card_to_json(DEFAULT_RATE_CARD), **changes}


def named(name: str) -> RateCard:
    return RateCard(name, "USD", Rate.flat(Decimal("1")), Rate.flat(Decimal("2")), Rate.flat(Decimal("0.12")))


def test_the_default_card_writes_prices_as_six_decimal_strings_and_reads_back_equal() -> None:
    data = card_to_json(DEFAULT_RATE_CARD)

    assert data["messages"] == [{"up_to": None, "unit_price": "2.000000"}]
    assert card_from_json(data) == DEFAULT_RATE_CARD


def test_a_graduated_card_reads_its_tiers_in_order() -> None:
    tiers = [{"up_to": 100, "unit_price": "1.5"}, {"up_to": None, "unit_price": "0.75"}]

    card = card_from_json(card_json(connection_minutes=tiers))

    assert card.connection_minutes == Rate((Tier(100, Decimal("1.5")), Tier(None, Decimal("0.75"))))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "a rate card is a JSON object"),
        ({"name": "x"}, "rate card: missing field bandwidth, connection_minutes, currency, messages"),
        (card_json(colour="red"), "rate card: unknown field colour"),
        (card_json(name=5), "name and currency are strings"),
        (card_json(messages=[]), "messages: a non-empty list of tiers is required"),
        (card_json(messages="flat"), "messages: a non-empty list of tiers is required"),
        (card_json(messages=[7]), "messages[0]: a tier is an object with up_to and unit_price"),
        (card_json(messages=[{"up_to": None}]), "messages[0]: missing field unit_price"),
        (card_json(messages=[{"up_to": None, "unit_price": 2.0}]), "messages[0].unit_price: write prices as decimal"),
        (card_json(messages=[{"up_to": None, "unit_price": "two"}]), "not a decimal number: 'two'"),
        (card_json(messages=[{"up_to": None, "unit_price": "1.0000001"}]), "messages[0]: unit price keeps at most 6"),
        (card_json(messages=[{"up_to": 3, "unit_price": "1"}]), "messages: the last tier of a rate must be unbounded"),
        (card_json(currency="usd"), "currency must be a three-letter ISO 4217 code"),
    ],
)
def test_a_bad_card_is_refused_naming_the_field_and_the_rule(data: Any, message: str) -> None:
    with pytest.raises(InvalidRateCard, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        card_from_json(data)


JAN, MAR, APR, JUN = Month(2026, 1), Month(2026, 3), Month(2026, 4), Month(2026, 6)


def test_without_any_version_the_built_in_default_card_is_in_force() -> None:
    assert card_in_force([], "acc", MAR) is DEFAULT_RATE_CARD
    assert version_in_force([], "acc", MAR) is None


def test_an_override_prices_its_account_from_its_effective_month_and_the_default_before() -> None:
    versions = [CardVersion(1, None, JAN, named("default-jan")), CardVersion(2, "acc", APR, named("contract"))]

    assert card_in_force(versions, "acc", MAR).name == "default-jan"
    assert card_in_force(versions, "acc", APR).name == "contract"
    assert card_in_force(versions, "acc", JUN).name == "contract"
    assert card_in_force(versions, "other", JUN).name == "default-jan"
    assert card_in_force(versions, None, JUN).name == "default-jan"


def test_the_newest_effective_month_wins_and_then_the_version_created_last() -> None:
    versions = [
        CardVersion(1, "acc", APR, named("april")),
        CardVersion(3, "acc", JAN, named("january, created later")),
        CardVersion(4, "acc", APR, named("april corrected")),
        CardVersion(5, "acc", JUN, named("june")),
    ]

    assert card_in_force(versions, "acc", MAR).name == "january, created later"
    assert card_in_force(versions, "acc", APR).name == "april corrected"
    assert card_in_force(versions, "acc", JUN).name == "june"
