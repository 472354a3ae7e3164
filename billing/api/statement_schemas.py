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


class CreditNoteSummaryOut(BaseModel):
    number: str
    issued_at: str = Field(description="RFC 3339, UTC.")
    reason: str
    total: str = Field(description="What the credit note takes off the statement, 2 decimals.")


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
    credit_notes: list[CreditNoteSummaryOut] = Field(
        description="Credit notes issued against this finalized statement, oldest first (not part of the content hash)."
    )
    credited: str = Field(description="The credit notes' total, 2 decimals.")
    remaining: str = Field(description="The total less what the credit notes credited, 2 decimals.")


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


AMOUNT_TEXT = r"^-?\d{1,12}(\.\d{1,12})?$"  # any decimal: the rules say why one is refused (422)


class CreditLineIn(Strict):
    line: int = Field(ge=1, le=100_000, description="The statement line credited: its position in `lines`, from 1.")
    amount: str = Field(pattern=AMOUNT_TEXT, description="Positive, to the cent, at most what remains of the line.")


class CreditNoteIn(Strict):
    reason: str = Field(min_length=1, max_length=2000)
    lines: list[CreditLineIn] | None = Field(
        default=None, min_length=1, max_length=1000, description="An amount per statement line; or give `amount`."
    )
    amount: str | None = Field(
        default=None, pattern=AMOUNT_TEXT, description="One whole-statement amount, positive, to the cent; or `lines`."
    )


class CreditLineOut(BaseModel):
    line: int | None = Field(description="The statement line credited (from 1); null for the whole statement.")
    service_id: str | None
    kind: str = Field(description="The credited line's kind, or `statement` for the whole statement.")
    description: str
    amount: str


class CreditNoteOut(BaseModel):
    number: str
    account_id: str
    month: str
    statement_number: str
    statement_content_hash: str
    currency: str
    reason: str
    lines: list[CreditLineOut]
    total: str
    issued_at: str = Field(description="RFC 3339, UTC.")
    issued_by: str
    content_hash: str = Field(description="SHA-256 of this JSON with `content_hash` null, as a statement's.")


class Refusal(BaseModel):
    """Why a request was refused: a sentence, or the fields that failed validation."""

    detail: str | list[dict[str, Any]]


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    actor: str
    account_id: str | None
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
