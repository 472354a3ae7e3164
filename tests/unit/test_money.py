from decimal import Decimal, Inexact

import pytest

from billing.domain.exceptions import BillingError, InvalidAmount
from billing.domain.money import (
    cents,
    exact_difference,
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


def test_to_decimal_reads_a_string_exactly():
    assert to_decimal("2.675") == Decimal("2.675")
    assert str(to_decimal("2.675")) == "2.675"


def test_to_decimal_accepts_an_int():
    assert to_decimal(1_000_000) == Decimal("1000000")


@pytest.mark.parametrize("value", [2.675, 1.0, True, None, b"1"])
def test_to_decimal_rejects_floats_bools_and_other_types_with_type_error(value):
    with pytest.raises(TypeError):
        to_decimal(value)


@pytest.mark.parametrize("text", ["abc", "", "1,00", "NaN", "Infinity", "-inf", "sNaN"])
def test_to_decimal_rejects_text_that_is_not_a_finite_decimal(text):
    with pytest.raises(InvalidAmount):
        to_decimal(text)


def test_invalid_amount_is_a_billing_error_and_a_value_error():
    assert issubclass(InvalidAmount, BillingError)
    assert issubclass(InvalidAmount, ValueError)


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("1.005", "1.01"),
        ("1.0049999", "1.00"),
        ("2.675", "2.68"),  # a float would have rounded this one down
        ("0.005", "0.01"),
        ("0.004", "0.00"),
        ("-1.005", "-1.01"),
        ("7", "7.00"),
    ],
)
def test_cents_rounds_half_up_away_from_zero_at_half_a_cent(amount, expected):
    result = cents(to_decimal(amount))
    assert result == to_decimal(expected)
    assert result.as_tuple().exponent == -2


def test_cents_never_returns_negative_zero():
    assert str(cents(to_decimal("-0.001"))) == "0.00"


def test_unit_price_quantizes_half_up_to_six_decimals():
    assert str(unit_price(to_decimal("0.0000005"))) == "0.000001"
    assert str(unit_price(to_decimal("0.00000049"))) == "0.000000"
    assert str(unit_price(to_decimal("1"))) == "1.000000"


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("3", "3.00"),
        ("1.005", "1.01"),
        ("-0.001", "0.00"),
        ("-12.5", "-12.50"),
        ("1E+3", "1000.00"),
        ("12345678901234567890.125", "12345678901234567890.13"),
    ],
)
def test_format_amount_writes_exactly_two_decimals_without_exponent(amount, expected):
    assert format_amount(to_decimal(amount)) == expected


@pytest.mark.parametrize(
    ("price", "expected"),
    [("1E+2", "100.000000"), ("0.12", "0.120000"), ("2", "2.000000"), ("0.0000015", "0.000002")],
)
def test_format_unit_price_writes_exactly_six_decimals_without_exponent(price, expected):
    assert format_unit_price(to_decimal(price)) == expected


def test_has_places_tells_whether_a_value_fits_in_that_many_decimals():
    assert has_places(to_decimal("1.50"), 2)
    assert has_places(to_decimal("1E+5"), 0)
    assert not has_places(to_decimal("1.005"), 2)
    assert not has_places(Decimal("NaN"), 2)


def test_exact_arithmetic_keeps_every_digit_beyond_the_default_28():
    big = to_decimal("123456789012345678901234567.123456789")
    assert exact_product(big, to_decimal("0.120000")) == to_decimal("14814814681481481468148148.05481481468")
    assert exact_sum([big, to_decimal("0.000000001")]) == to_decimal("123456789012345678901234567.123456790")
    assert exact_difference(big, big) == 0


def test_exact_sum_of_nothing_is_zero():
    assert exact_sum([]) == 0


def test_exact_shift_moves_the_decimal_point_without_rounding():
    assert str(exact_shift(to_decimal(1_234_567_890), -9)) == "1.234567890"


def test_exact_places_pads_but_refuses_to_drop_a_digit():
    assert format(exact_places(to_decimal("1E+2"), 0), "f") == "100"
    assert str(exact_places(to_decimal("1.5"), 9)) == "1.500000000"
    with pytest.raises(Inexact):
        exact_places(to_decimal("1.5"), 0)
