"""Bodies of the webhook endpoint routes: an endpoint (its secret only when just registered) and its log."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from billing.webhooks.events import EVENT_TYPES

EVENT_TYPES_TEXT = ", ".join(f"`{event_type}`" for event_type in EVENT_TYPES)


class EndpointIn(BaseModel):
    """An endpoint to register: where to POST, and which event types it wants."""

    url: str = Field(
        max_length=2000,
        description="http(s) URL of a public address (or one in FANMETER_BACKEND_ALLOWED_NETWORKS); "
        "judged again at every delivery.",
        examples=["https://erp.example.com/hooks/fanmeter"],
    )
    event_types: list[str] = Field(min_length=1, max_length=20, description=f"Any of {EVENT_TYPES_TEXT}.")
    description: str = Field(default="", max_length=200)


class EndpointPatch(BaseModel):
    """Enable or disable an endpoint; enabling sends what waited, oldest first."""

    enabled: bool


class EndpointOut(BaseModel):
    id: str
    account_id: str | None = Field(description="null: a platform-wide endpoint (every account's events).")
    url: str
    event_types: list[str]
    description: str
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    created_by: str


class NewEndpointOut(EndpointOut):
    secret: str = Field(
        description="The Standard Webhooks signing secret (`whsec_…`), shown in this response only.",
    )


class DeliveryOut(BaseModel):
    """One event's delivery to the endpoint: where it stands and its last attempt."""

    delivery_id: int
    event_id: str = Field(description="The `webhook-id` header: receivers deduplicate on it.")
    event_type: str
    event_created_at: datetime
    status: str = Field(description="`pending`, `delivered` or `failed` (given up after a day).")
    attempts: int
    last_attempt_at: datetime | None
    last_response_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
