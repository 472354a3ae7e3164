"""Billing services: statements priced from the metering rollups."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from billing.domain.rate_cards import DEFAULT_RATE_CARD, RateCard
from billing.domain.statements import Statement, build_statement
from metering import service as metering_service
from metering.domain.instants import Month, to_micros


def statement_status(month: Month, now: datetime) -> str:
    """A month still running is an ``open`` estimate; a month that has ended is a ``draft``."""
    return "open" if to_micros(now) < month.end_us else "draft"


def statement_for_month(
    engine: Engine, account_id: str, month: Month, now: datetime, rate_card: RateCard = DEFAULT_RATE_CARD
) -> Statement:
    """Prices an account's usage for a month with its rate card."""
    usage = metering_service.usage_for_month(engine, account_id, month)
    return build_statement(usage, rate_card, statement_status(month, now))
