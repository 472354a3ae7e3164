"""Bodies of the usage alert endpoints: thresholds and their crossings (limits and values as exact strings)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from billing.api.schemas import Strict

MeasureName = Literal["amount", "projected_amount", "connection_minutes", "messages", "gigabytes"]


class ThresholdIn(Strict):
    """A threshold to add: the measure, its limit, and a name for people to recognise it by."""

    measure: MeasureName = Field(
        description="`amount` (month to date) and `projected_amount` (month end) are in the account's currency; "
        "`connection_minutes`, `messages` and `gigabytes` (10^9 bytes out) are usage."
    )
    limit: str = Field(
        max_length=40,
        description="Above zero: money to the cent, minutes and messages whole, gigabytes to the byte.",
        examples=["100.00", "1000000", "2.5"],
    )
    name: str = Field(default="", max_length=200, description="Empty: named after its measure and limit.")


class ThresholdOut(BaseModel):
    id: str
    account_id: str
    measure: MeasureName
    limit: str
    name: str
    created_at: datetime
    created_by: str


class CrossingOut(BaseModel):
    """A threshold reached in a month; each threshold has at most one a month."""

    threshold_id: str
    name: str
    month: str
    measure: MeasureName
    limit: str
    value: str = Field(description="What the checker saw when it fired (at or above the limit).")
    currency: str | None = Field(description="The statement's currency for money measures, else null.")
    crossed_at: datetime
