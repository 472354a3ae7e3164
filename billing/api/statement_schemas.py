"""Bodies of the rate-card, statement and audit endpoints (DESIGN.md "Statement JSON")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, Field

from billing.api.schemas import Strict

MONTH_PATTERN = r"^(19|2[0-9])[0-9]{2}-(0[1-9]|1[0-2])$"  # billing months of the years 1900-2999
MonthPath = Annotated[str, Path(pattern=MONTH_PATTERN, description="A UTC billing month, YYYY-MM.")]
PRICE_PATTERN = r"^\d{1,9}(\.\d{1,6})?$"  # up to 999,999,999.999999 per unit


class TierJson(Strict):
    up_to: int | None = Field(
        le=10**15, description="Upper bound of the band in billing units; null = unbounded (last tier)."
    )
    unit_price: str = Field(pattern=PRICE_PATTERN, description="Price per billing unit, up to 6 decimals.")


class RateCardJson(Strict):
    name: str = Field(min_length=1, max_length=200)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    connection_minutes: list[TierJson] = Field(min_length=1, description="Priced per million minutes.")
    messages: list[TierJson] = Field(min_length=1, description="Priced per million messages.")
    bandwidth: list[TierJson] = Field(min_length=1, description="Priced per GB (10^9 bytes) out.")


class RateCardIn(Strict):
    effective_month: str = Field(pattern=MONTH_PATTERN, description="First month (YYYY-MM, UTC) priced by it.")
    card: RateCardJson


class RateCardOut(BaseModel):
    account_id: str | None
    month: str = Field(description="The month this card prices.")
    source: Literal["override", "default", "built-in"]
    version_id: int | None
    effective_month: str | None
    card: RateCardJson


class StatementLineOut(BaseModel):
    service_id: str | None
    kind: Literal["connection_minutes", "messages", "bandwidth", "adjustment"]
    quantity: str
    unit: str
    unit_price: str
    amount: str
    description: str


class StatementOut(BaseModel):
    account_id: str
    month: str
    status: Literal["open", "draft", "finalized"]
    currency: str
    lines: list[StatementLineOut]
    subtotal: str
    total: str
    number: str | None
    content_hash: str | None


class StatementSummaryOut(BaseModel):
    month: str
    status: Literal["open", "draft", "finalized"]
    total: str
    currency: str
    number: str | None
    content_hash: str | None
    generated_at: datetime | None
    finalized_at: datetime | None


class AdjustmentIn(Strict):
    amount: str = Field(pattern=r"^-?\d{1,12}(\.\d{1,2})?$", description="To the cent; a credit is negative.")
    reason: str = Field(min_length=1, max_length=2000)
    service_id: str | None = Field(default=None, max_length=64)


class AdjustmentOut(BaseModel):
    id: int
    account_id: str
    month: str
    amount: str
    reason: str
    service_id: str | None
    created_at: datetime
    created_by: str


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    actor: str
    account_id: str | None
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
