"""Tables of the admin service: accounts, people and tokens, services, rates, statements, audit.

Every table lives on metering's one ``MetaData`` so Alembic sees a single schema.
Ids users see are short strings (``acc_…``, ``svc_…``); money is stored as exact decimal
text through ``MoneyText`` because SQLite has no decimal type; instants use ``UtcDateTime``.
The audit log, finalized statements and credit notes are append-only: no repository updates them.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from billing.domain.money import to_decimal
from kernel.db import Base, BigId, UtcDateTime

ID = 64
ROLES = ("admin", "finance", "superuser", "engineer", "billing", "user")
PLATFORM_ROLES = ("admin", "finance")


class MoneyText(TypeDecorator[Decimal]):
    """A Decimal stored as its exact text, so SQLite and PostgreSQL keep every digit alike."""

    impl = String(40)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:  # noqa: ARG002
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"money columns take Decimal, got {type(value).__name__}")
        return format(value, "f")

    def process_result_value(self, value: str | None, dialect: Dialect) -> Decimal | None:  # noqa: ARG002
        return None if value is None else to_decimal(value)


class Account(Base):
    """A customer account: paid or trial, billed in one currency."""

    __tablename__ = "account"

    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    plan: Mapped[str] = mapped_column(String(10))  # "paid" | "trial"
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AccountProduct(Base):
    """A product (``compute`` or ``fanout``) the account has purchased; no row = not enabled."""

    __tablename__ = "account_product"

    account_id: Mapped[str] = mapped_column(ForeignKey("account.id"), primary_key=True)
    product: Mapped[str] = mapped_column(String(20), primary_key=True)
    enabled_at: Mapped[datetime] = mapped_column(UtcDateTime)


class User(Base):
    """A person with one role: platform roles have no account, account roles exactly one."""

    __tablename__ = "app_user"  # "user" is reserved in PostgreSQL

    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    account_id: Mapped[str | None] = mapped_column(ForeignKey("account.id"), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ApiToken(Base):
    """A bearer token, kept only as its SHA-256: a user's, a service's publish or an ingest token."""

    __tablename__ = "api_token"

    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # "user" | "publish" | "ingest"
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters, shown in listings so people can tell their tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    user_id: Mapped[str | None] = mapped_column(ForeignKey("app_user.id"), index=True)
    account_id: Mapped[str | None] = mapped_column(ForeignKey("account.id"), index=True)
    service_id: Mapped[str | None] = mapped_column(ForeignKey("service.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Service(Base):
    """A Compute or Delivery service of an account, with the flags Fanout cares about."""

    __tablename__ = "service"

    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("account.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(10))  # "compute" | "delivery"
    fanout_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    directors: Mapped[bool] = mapped_column(Boolean, default=False)
    shielding: Mapped[bool] = mapped_column(Boolean, default=False)
    ngwaf: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Pushpin's auto_cross_origin for the service's clients (the broker's CORS headers); migration 0012.
    cross_origin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Backend(Base):
    """An origin of a service; ``settings`` holds anything beyond the four Fanout allows."""

    __tablename__ = "backend"
    __table_args__ = (UniqueConstraint("service_id", "name"),)

    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("service.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(255))
    use_tls: Mapped[bool] = mapped_column(Boolean)
    override_host: Mapped[str | None] = mapped_column(String(255))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # "verified" | "unverified" (not reachable when checked) | "not_applicable" (no TLS)
    tls_status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class RateCardVersion(Base):
    """Prices effective from a month on: the default card (no account) or a contract override.

    Never updated: a change is a new row, so every month keeps the prices it was billed at.
    """

    __tablename__ = "rate_card_version"
    __table_args__ = (Index("ix_rate_card_version_lookup", "account_id", "effective_month"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str | None] = mapped_column(ForeignKey("account.id"))
    effective_month: Mapped[str] = mapped_column(String(7))  # "YYYY-MM"
    card: Mapped[dict[str, Any]] = mapped_column(JSON)  # rate card JSON, prices as strings
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(ID))


class StatementRecord(Base):
    """A stored statement (draft or finalized) of one account for one month.

    ``body`` is the statement JSON of DESIGN.md; ``billed_usage`` records, per month, the
    usage this statement bills, so a later statement can bill only what arrived since.
    """

    __tablename__ = "statement"
    __table_args__ = (
        UniqueConstraint("account_id", "month"),
        # The draft build's month-wide reads for every account (migration 0017).
        Index("ix_statement_month_status_account", "month", "status", "account_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("account.id"))
    month: Mapped[str] = mapped_column(String(7))
    status: Mapped[str] = mapped_column(String(10))  # "draft" | "finalized"
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    billed_usage: Mapped[dict[str, Any]] = mapped_column(JSON)
    number: Mapped[str | None] = mapped_column(String(32), unique=True)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    generated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finalized_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finalized_by: Mapped[str | None] = mapped_column(String(ID))
    # The usage revision of each month this statement read ({"YYYY-MM": n}, migration 0016): a later
    # draft re-reads a finalized month only when its revision moved. None: built before 0016.
    usage_revisions: Mapped[dict[str, int] | None] = mapped_column(JSON, nullable=True)


class Adjustment(Base):
    """An adjustment or credit finance added to an account's statement for a month."""

    __tablename__ = "adjustment"
    __table_args__ = (Index("ix_adjustment_account_month", "account_id", "month"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("account.id"))
    month: Mapped[str] = mapped_column(String(7))
    amount: Mapped[Decimal] = mapped_column(MoneyText)  # a credit is negative
    reason: Mapped[str] = mapped_column(Text)
    service_id: Mapped[str | None] = mapped_column(String(ID))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(ID))


class NumberSequence(Base):
    """The last number given out in one gapless sequence (``statement``, ``credit_note``) and period.

    The period is the UTC year of issue (0: a sequence that never resets). The row is locked
    (``SELECT … FOR UPDATE``) and advanced in the transaction of the document it numbers.
    """

    __tablename__ = "number_sequence"

    sequence: Mapped[str] = mapped_column(String(20), primary_key=True)
    period: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_value: Mapped[int] = mapped_column(BigInteger)


class CreditNoteRecord(Base):
    """A credit note issued against a finalized statement. Append-only: never updated, never deleted.

    ``body`` is the credit note JSON (``billing.domain.credit_notes``): its lines, total, reason,
    number and content hash, as issued.
    """

    __tablename__ = "credit_note"
    __table_args__ = (Index("ix_credit_note_account_month", "account_id", "month"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    statement_id: Mapped[int] = mapped_column(ForeignKey("statement.id"))
    account_id: Mapped[str] = mapped_column(ForeignKey("account.id"))
    month: Mapped[str] = mapped_column(String(7))
    total: Mapped[Decimal] = mapped_column(MoneyText)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    issued_by: Mapped[str] = mapped_column(String(ID))


class AuditEntry(Base):
    """Append-only: who changed what, when, and the value before and after."""

    __tablename__ = "audit_entry"
    __table_args__ = (Index("ix_audit_entry_account_at", "account_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(ID))  # user id, or "system" for beat tasks
    account_id: Mapped[str | None] = mapped_column(String(ID))
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str] = mapped_column(String(200))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class EventSubmission(Base):
    """A batch sent through ``POST /v1/events`` and the ingest token that sent it.

    The batch id embeds nothing secret, so this row is what lets only its sender (and the platform
    admin) read the batch's status; an id with no row is unknown (404).
    """

    __tablename__ = "event_submission"

    batch_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    token_id: Mapped[str] = mapped_column(String(ID))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
