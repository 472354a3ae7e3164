from decimal import Decimal

import pytest

from billing.domain.exceptions import BillingError, InvalidQuantity, InvalidRateCard
from billing.domain.money import to_decimal
from billing.domain.pricing import graduated_amount, tier_bands
from billing.domain.rate_cards import DEFAULT_RATE_CARD, Rate, RateCard, Tier


def d(text: str) -> Decimal:
    return to_decimal(text)


def three_tiers() -> Rate:
    return Rate((Tier(100, d("2.00")), Tier(500, d("1.50")), Tier(None, d("1.00"))))


def test_quantity_within_the_first_tier_is_one_band():
    rate = three_tiers()
    assert tier_bands(d("40"), rate) == [(d("40"), rate.tiers[0])]


def test_quantity_across_a_boundary_is_split_into_bands():
    rate = three_tiers()
    assert tier_bands(d("150"), rate) == [(d("100"), rate.tiers[0]), (d("50"), rate.tiers[1])]


def test_quantity_exactly_at_a_boundary_fills_only_the_bands_below_it():
    rate = three_tiers()
    assert tier_bands(d("100"), rate) == [(d("100"), rate.tiers[0])]


def test_quantity_past_the_last_bound_reaches_the_unbounded_tier():
    rate = three_tiers()
    bands = tier_bands(d("600.5"), rate)
    assert bands == [(d("100"), rate.tiers[0]), (d("400"), rate.tiers[1]), (d("100.5"), rate.tiers[2])]


def test_zero_quantity_has_no_bands_and_costs_nothing():
    assert tier_bands(d("0"), three_tiers()) == []
    assert graduated_amount(d("0"), three_tiers()) == 0


def test_graduated_amount_prices_each_band_at_its_own_tier():
    # 100 x 2.00 + 50 x 1.50 = 275.00
    assert graduated_amount(d("150"), three_tiers()) == d("275.00")


def test_graduated_amount_is_exact_and_unrounded():
    # 100 x 2.00 + 400 x 1.50 + 0.000000001 x 1.00
    assert graduated_amount(d("500.000000001"), three_tiers()) == d("800.000000001")


def test_flat_rate_amount_is_quantity_times_price():
    assert graduated_amount(d("1.234567890"), Rate.flat(d("0.12"))) == d("0.14814814680")


def test_negative_quantity_cannot_be_priced():
    with pytest.raises(InvalidQuantity):
        tier_bands(d("-1"), three_tiers())
    with pytest.raises(InvalidQuantity):
        graduated_amount(d("-0.000001"), Rate.flat(d("1")))


def test_a_rate_with_one_unbounded_tier_is_flat():
    assert Rate.flat(d("1")).is_flat
    assert not three_tiers().is_flat


def test_default_rate_card_documents_fanmeter_default_prices():
    card = DEFAULT_RATE_CARD
    assert card.currency == "USD"
    assert card.connection_minutes == Rate.flat(d("1.000000"))
    assert card.messages == Rate.flat(d("2.000000"))
    assert card.bandwidth == Rate.flat(d("0.120000"))


@pytest.mark.parametrize(
    "tiers",
    [
        (),
        (Tier(100, d("1")),),
        (Tier(None, d("1")), Tier(None, d("0.5"))),
        (Tier(None, d("1")), Tier(100, d("0.5")), Tier(None, d("0.1"))),
        (Tier(100, d("1")), Tier(100, d("0.5")), Tier(None, d("0.1"))),
        (Tier(500, d("1")), Tier(100, d("0.5")), Tier(None, d("0.1"))),
    ],
    ids=["no tiers", "last bounded", "two unbounded", "unbounded first", "equal bounds", "decreasing bounds"],
)
def test_rates_with_invalid_tier_layouts_are_rejected(tiers):
    with pytest.raises(InvalidRateCard):
        Rate(tiers)


@pytest.mark.parametrize(
    ("up_to", "price"),
    [
        (0, "1"),
        (-5, "1"),
        (True, "1"),
        ("100", "1"),
        (100, "-0.000001"),
        (100, "0.0000001"),
        (None, "NaN"),
        (None, "Infinity"),
    ],
)
def test_tiers_with_invalid_bounds_or_prices_are_rejected(up_to, price):
    with pytest.raises(InvalidRateCard):
        Tier(up_to, Decimal(price))


def test_a_float_unit_price_is_a_type_error():
    with pytest.raises(TypeError):
        Tier(None, 0.12)  # type: ignore[arg-type]


def test_a_free_tier_is_allowed():
    assert graduated_amount(d("250"), Rate((Tier(100, d("0")), Tier(None, d("1"))))) == d("150")


@pytest.mark.parametrize(
    ("name", "currency"), [("default", "usd"), ("default", "US"), ("default", "USDX"), (" ", "USD")]
)
def test_rate_cards_need_a_name_and_an_iso_currency(name, currency):
    flat = Rate.flat(d("1"))
    with pytest.raises(InvalidRateCard):
        RateCard(name, currency, flat, flat, flat)


def test_invalid_rate_card_is_a_billing_error():
    assert issubclass(InvalidRateCard, BillingError)
