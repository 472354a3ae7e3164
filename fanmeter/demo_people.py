"""The demo accounts and people of `fanmeter up`: one person per role, each with a fresh token."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from billing import accounts
from billing.access import issue
from billing.domain.roles import ACCOUNT_ROLES, PLATFORM_ROLES, ROLES, Principal
from billing.orm import Account, User
from fanmeter import demo

DEMO_ACTOR = Principal(token_id="fanmeter-up", kind="user", role="admin", user_id="fanmeter-up")
PAID = {"acme", "initech"}
PEOPLE_ACCOUNT = "acme"  # the account whose superuser, engineer, billing and user get demo tokens


def seed(engine: Engine, now: datetime) -> dict[str, str]:
    """Create the demo accounts and people if missing; return a new token per role (role -> secret)."""
    tokens: dict[str, str] = {}
    with Session(engine, expire_on_commit=False) as session:
        for account_id in sorted(demo.ACCOUNTS):
            if session.get(Account, account_id) is None:
                plan = "paid" if account_id in PAID else "trial"
                accounts.create_account(
                    session,
                    DEMO_ACTOR,
                    name=account_id.title(),
                    plan=plan,
                    currency="USD",
                    account_id=account_id,
                    now=now,
                )
        for role in ROLES:
            home = None if role in PLATFORM_ROLES else PEOPLE_ACCOUNT
            user = _person(session, home, role, now)
            issued = issue(session, kind="user", name="fanmeter up", now=now, user_id=user.id, account_id=home)
            tokens[role] = issued.secret
            session.commit()
    assert set(tokens) == PLATFORM_ROLES | ACCOUNT_ROLES
    return tokens


def _person(session: Session, account_id: str | None, role: str, now: datetime) -> User:
    email = f"{role}@{account_id or 'platform'}.demo"
    user = session.scalars(select(User).where(User.email == email)).one_or_none()
    if user is not None:
        return user
    return accounts.create_user(session, DEMO_ACTOR, account_id=account_id, email=email, role=role, now=now)
