"""Statement and credit-note numbers: the format, the yearly period, and the prefixes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from billing.domain.numbering import CREDIT_NOTE, NO_RESET, STATEMENT, Numbering
from billing.settings import BillingSettings
from kernel.instants import to_micros


def test_numbers_carry_the_prefix_the_year_and_six_digits_at_least() -> None:
    numbering = Numbering()

    assert numbering.number(STATEMENT, 2026, 123) == "FM-2026-000123"
    assert numbering.number(CREDIT_NOTE, 2026, 7) == "CN-2026-000007"
    assert numbering.number(STATEMENT, 2026, 1_234_567) == "FM-2026-1234567"


def test_without_the_yearly_reset_there_is_one_period_and_no_year_in_the_number() -> None:
    numbering = Numbering("INV", "CR", yearly_reset=False)

    assert numbering.period(to_micros(datetime(2031, 5, 1, tzinfo=UTC))) == NO_RESET
    assert numbering.number(STATEMENT, NO_RESET, 42) == "INV-000042"
    assert numbering.number(CREDIT_NOTE, NO_RESET, 1) == "CR-000001"


def test_the_period_is_the_utc_year_of_issue() -> None:
    numbering = Numbering()

    assert numbering.period(to_micros(datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC))) == 2026
    assert numbering.period(to_micros(datetime(2027, 1, 1, tzinfo=UTC))) == 2027


@pytest.mark.parametrize(
    ("statement", "credit_note"),
    [("", "CN"), ("fm", "CN"), ("FM-", "CN"), ("1FM", "CN"), ("A" * 11, "CN"), ("FM", "FM")],
)
def test_a_prefix_that_could_be_misread_or_shared_is_refused(statement: str, credit_note: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        Numbering(statement, credit_note)


def test_a_sequence_starts_at_one_and_has_a_known_name() -> None:
    with pytest.raises(ValueError, match="starts at 1"):
        Numbering().number(STATEMENT, 2026, 0)
    with pytest.raises(ValueError, match="no number sequence"):
        Numbering().prefix("invoice")


def test_the_settings_give_the_numbering_and_refuse_a_bad_prefix_at_start_up() -> None:
    settings = BillingSettings(statement_number_prefix="INV", number_yearly_reset=False)

    assert settings.numbering == Numbering("INV", "CN", yearly_reset=False)
    with pytest.raises(ValidationError, match="different number prefixes"):
        BillingSettings(credit_note_number_prefix="FM")
