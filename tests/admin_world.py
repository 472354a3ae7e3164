"""A seeded admin service for tests: two accounts, a person of every role, and a driven clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from billing import accounts
from billing.access import issue
from billing.api.app import create_app
from billing.domain.roles import ACCOUNT_ROLES, PLATFORM_ROLES, Principal
from billing.settings import BillingSettings

OWN, OTHER = "acc_own", "acc_other"
SEEDER = Principal(token_id="test-seed", kind="user", role="admin", user_id="test-seed")
ADMIN_TABLES = (
    "webhook_attempt",
    "webhook_delivery",
    "webhook_event",
    "webhook_endpoint",
    "threshold_crossing",
    "usage_threshold",
    "alert_check",
    "event_submission",
    "credit_note",
    "number_sequence",
    "audit_entry",
    "adjustment",
    "statement",
    "rate_card_version",
    "api_token",
    "backend",
    "service",
    "account_product",
    "app_user",
    "account",
)  # fmt: skip  (children before parents, for foreign keys)


@dataclass
class Clock:
    """A clock the test moves by hand instead of sleeping."""

    now: datetime = field(default_factory=lambda: datetime(2026, 3, 15, 12, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class World:
    client: TestClient
    clock: Clock
    engine: Engine
    tokens: dict[str, str]  # role -> secret: platform roles, and account roles of OWN
    other_tokens: dict[str, str]  # account role -> secret, in OTHER
    user_ids: dict[str, str]

    def as_role(self, role: str, account: str = OWN) -> dict[str, str]:
        """Headers of a person with ``role`` (in ``account`` for account roles)."""
        secret = self.other_tokens[role] if account == OTHER and role in ACCOUNT_ROLES else self.tokens[role]
        return {"Authorization": f"Bearer {secret}"}


def clear_admin_tables(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in ADMIN_TABLES:
            conn.execute(text(f"DELETE FROM {table}"))


def build_world(engine: Engine, clock: Clock | None = None, settings: BillingSettings | None = None) -> World:
    """Seed both accounts (OWN paid, OTHER trial) with one person per role, each with a token."""
    clear_admin_tables(engine)
    clock = clock or Clock()
    tokens: dict[str, str] = {}
    other: dict[str, str] = {}
    user_ids: dict[str, str] = {}
    with Session(engine, expire_on_commit=False) as session:
        for account_id, plan in ((OWN, "paid"), (OTHER, "trial")):
            accounts.create_account(
                session, SEEDER, name=account_id, plan=plan, currency="USD", account_id=account_id, now=clock.now
            )
        for role in sorted(PLATFORM_ROLES):
            tokens[role] = _person(session, clock, None, role, user_ids)
        for role in sorted(ACCOUNT_ROLES):
            tokens[role] = _person(session, clock, OWN, role, user_ids)
            other[role] = _person(session, clock, OTHER, role, {})
    app = create_app(engine, settings or BillingSettings(), clock=clock)
    return World(TestClient(app), clock, engine, tokens, other, user_ids)


def _person(session: Session, clock: Clock, account_id: str | None, role: str, ids: dict[str, str]) -> str:
    email = f"{role}@{account_id or 'platform'}.test"
    user = accounts.create_user(session, SEEDER, account_id=account_id, email=email, role=role, now=clock.now)
    ids[role] = user.id
    issued = issue(session, kind="user", name="test", now=clock.now, user_id=user.id, account_id=account_id)
    session.commit()
    return issued.secret
