"""The demo people of `fanmeter up`: one person per role, each with a fresh token.

The platform's admin and finance; Acme's superuser, engineer, billing and user; and the superuser
of the trial account (Umbrella), who sees why Fanout cannot be purchased there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from billing import accounts
from billing.access import issue
from billing.domain.roles import ACCOUNT_ROLES, PLATFORM_ROLES, ROLES, Principal
from billing.orm import User

DEMO_ACTOR = Principal(token_id="fanmeter-up", kind="user", role="admin", user_id="fanmeter-up")
PEOPLE_ACCOUNT = "acme"  # the account whose superuser, engineer, billing and user get demo tokens
TRIAL_ACCOUNT = "umbrella"  # a trial account: its superuser gets a token too


@dataclass(frozen=True)
class DemoPerson:
    role: str
    account_id: str | None  # None: a platform person
    email: str
    user_id: str
    token: str  # a fresh API token's secret, shown once

    @property
    def where(self) -> str:
        return self.account_id or "platform"


def seed(engine: Engine, now: datetime) -> list[DemoPerson]:
    """Create the demo people if missing (their accounts exist: ``demo.seed_catalog``); a new token each."""
    wanted = [(role, None if role in PLATFORM_ROLES else PEOPLE_ACCOUNT) for role in ROLES]
    wanted.append(("superuser", TRIAL_ACCOUNT))
    people = []
    with Session(engine, expire_on_commit=False) as session:
        for role, home in wanted:
            user = _person(session, home, role, now)
            issued = issue(session, kind="user", name="fanmeter up", now=now, user_id=user.id, account_id=home)
            session.commit()
            people.append(DemoPerson(role, home, user.email, user.id, issued.secret))
    assert {p.role for p in people} == PLATFORM_ROLES | ACCOUNT_ROLES
    return people


def _person(session: Session, account_id: str | None, role: str, now: datetime) -> User:
    email = f"{role}@{account_id or 'platform'}.demo"
    user = session.scalars(select(User).where(User.email == email)).one_or_none()
    if user is not None:
        return user
    return accounts.create_user(session, DEMO_ACTOR, account_id=account_id, email=email, role=role, now=now)
