"""Request and response bodies of the admin API (separate from the ORM classes)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Plan = Literal["paid", "trial"]
Role = Literal["admin", "finance", "superuser", "engineer", "billing", "user"]
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"


class Strict(BaseModel):
    """Unknown fields are refused, naming the field, instead of being ignored; so is a NUL in any text."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        # PostgreSQL cannot store NUL in text; refuse it at the edge instead of failing in the database.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("text must not contain NUL characters")
        return value


class AccountIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    plan: Plan = "trial"
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    id: str | None = Field(default=None, min_length=1, max_length=64, pattern=ID_PATTERN)


class PlanIn(Strict):
    plan: Plan


class AccountOut(BaseModel):
    id: str
    name: str
    plan: Plan
    currency: str
    products: list[str]


class UserIn(Strict):
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    role: Role


class UserOut(BaseModel):
    id: str
    account_id: str | None
    email: str
    role: Role


class TokenIn(Strict):
    name: str = Field(default="api token", min_length=1, max_length=200)


class TokenOut(BaseModel):
    id: str
    kind: Literal["user", "publish", "ingest"]
    name: str
    prefix: str
    user_id: str | None
    account_id: str | None
    service_id: str | None
    created_at: datetime
    revoked_at: datetime | None


class NewTokenOut(TokenOut):
    """A token just created: ``token`` is its secret, shown this once and never again."""

    token: str


class Health(BaseModel):
    status: Literal["ok"]
    database: Literal["ok"]
