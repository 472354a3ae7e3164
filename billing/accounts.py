"""Accounts, their people and their tokens: the admin and superuser side of the service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing import audit
from billing.access import IssuedToken, issue, new_id
from billing.domain.exceptions import Conflict, NotFound, RuleViolation
from billing.domain.roles import ACCOUNT_ROLES, PLATFORM_ROLES, Principal
from billing.orm import Account, AccountProduct, ApiToken, User

PLANS = ("paid", "trial")


def account_json(account: Account) -> dict[str, Any]:
    """The account as the API and the audit log show it."""
    return {"id": account.id, "name": account.name, "plan": account.plan, "currency": account.currency}


def get_account(session: Session, account_id: str) -> Account:
    """Return an account or raise ``NotFound``."""
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound(f"no account {account_id!r}")
    return account


_ACCOUNT_EXISTS = select(Account.id).where(Account.id == bindparam("account_id"))


def require_account_on(conn: Connection, account_id: str) -> None:
    """Raise ``NotFound`` unless the account exists (one Core query on the caller's connection, for hot read paths)."""
    if conn.execute(_ACCOUNT_EXISTS, {"account_id": account_id}).first() is None:
        raise NotFound(f"no account {account_id!r}")


def list_accounts(session: Session, principal: Principal) -> list[Account]:
    """Every account for platform people; an account user's own account only."""
    query = select(Account).order_by(Account.id)
    if principal.account_id is not None:
        query = query.where(Account.id == principal.account_id)
    return list(session.scalars(query))


def create_account(
    session: Session,
    principal: Principal,
    *,
    name: str,
    plan: str,
    currency: str,
    account_id: str | None,
    now: datetime,
) -> Account:
    """Create an account (the id may be given, to match the ids the broker already meters)."""
    account = Account(id=account_id or new_id("acc"), name=name, plan=plan, currency=currency, created_at=now)
    if session.get(Account, account.id) is not None:
        raise Conflict(f"account {account.id!r} already exists")
    session.add(account)
    audit.record(
        session,
        actor=principal.actor,
        account_id=account.id,
        action="account.create",
        target=f"account/{account.id}",
        before=None,
        after=account_json(account),
        now=now,
    )
    session.commit()
    return account


def set_plan(session: Session, principal: Principal, account_id: str, plan: str, now: datetime) -> Account:
    """Mark an account paid or trial; the change is audited."""
    account = get_account(session, account_id)
    before = account_json(account)
    account.plan = plan
    audit.record(
        session,
        actor=principal.actor,
        account_id=account.id,
        action="account.plan",
        target=f"account/{account.id}",
        before=before,
        after=account_json(account),
        now=now,
    )
    session.commit()
    return account


def user_json(user: User) -> dict[str, Any]:
    """The user as the API and the audit log show it."""
    return {"id": user.id, "account_id": user.account_id, "email": user.email, "role": user.role}


def create_user(
    session: Session, principal: Principal, *, account_id: str | None, email: str, role: str, now: datetime
) -> User:
    """Add a person with one role: platform roles without an account, account roles with one."""
    if account_id is None and role not in PLATFORM_ROLES:
        raise RuleViolation(f"role {role!r} belongs to an account; platform users are admin or finance")
    if account_id is not None and role not in ACCOUNT_ROLES:
        raise RuleViolation(f"role {role!r} is a platform role; account users are {', '.join(sorted(ACCOUNT_ROLES))}")
    user = User(id=new_id("usr"), account_id=account_id, email=email, role=role, created_at=now)
    session.add(user)
    audit.record(
        session,
        actor=principal.actor,
        account_id=account_id,
        action="user.create",
        target=f"user/{user.id}",
        before=None,
        after=user_json(user),
        now=now,
    )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"a user with email {email!r} already exists") from None
    return user


def list_users(session: Session, account_id: str | None) -> list[User]:
    """The account's current users (platform users when ``account_id`` is None)."""
    return list(
        session.scalars(
            select(User).where(User.account_id == account_id, User.removed_at.is_(None)).order_by(User.email)
        )
    )


def get_user(session: Session, user_id: str) -> User:
    """Return a current user or raise ``NotFound``."""
    user = session.get(User, user_id)
    if user is None or user.removed_at is not None:
        raise NotFound(f"no user {user_id!r}")
    return user


def remove_user(session: Session, principal: Principal, user: User, now: datetime) -> None:
    """Remove a person: their tokens stop working at once; the row stays for the audit trail."""
    user.removed_at = now
    for token in session.scalars(select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))):
        token.revoked_at = now
    audit.record(
        session,
        actor=principal.actor,
        account_id=user.account_id,
        action="user.remove",
        target=f"user/{user.id}",
        before=user_json(user),
        after=None,
        now=now,
    )
    session.commit()


def create_user_token(session: Session, principal: Principal, user: User, name: str, now: datetime) -> IssuedToken:
    """Give a person a new API token; its secret is returned this once."""
    return issue_audited(
        session, principal, kind="user", name=name, now=now, user_id=user.id, account_id=user.account_id
    )


def issue_audited(
    session: Session,
    principal: Principal,
    *,
    kind: str,
    name: str,
    now: datetime,
    user_id: str | None = None,
    account_id: str | None = None,
    service_id: str | None = None,
) -> IssuedToken:
    """Issue a token of any kind and audit it in the same transaction; its secret is returned this once."""
    issued = issue(
        session, kind=kind, name=name, now=now, user_id=user_id, account_id=account_id, service_id=service_id
    )
    audit.record(
        session,
        actor=principal.actor,
        account_id=account_id,
        action="token.create",
        target=f"token/{issued.row.id}",
        before=None,
        after=token_json(issued.row),
        now=now,
    )
    session.commit()
    return issued


def token_json(token: ApiToken) -> dict[str, Any]:
    """A token as listings show it: never its secret, only its first characters."""
    return {
        "id": token.id,
        "kind": token.kind,
        "name": token.name,
        "prefix": token.prefix,
        "user_id": token.user_id,
        "account_id": token.account_id,
        "service_id": token.service_id,
        "created_at": token.created_at.isoformat(),
        "revoked_at": None if token.revoked_at is None else token.revoked_at.isoformat(),
    }


def list_tokens(session: Session, account_id: str | None) -> list[ApiToken]:
    """Every token of an account (platform tokens when ``account_id`` is None), newest first."""
    query = select(ApiToken).where(ApiToken.account_id == account_id).order_by(ApiToken.created_at.desc())
    return list(session.scalars(query))


def get_token(session: Session, token_id: str) -> ApiToken:
    """Return a token or raise ``NotFound``."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"no token {token_id!r}")
    return token


def revoke_token(session: Session, principal: Principal, token: ApiToken, now: datetime) -> ApiToken:
    """Revoke a token for good (revoking twice changes nothing)."""
    if token.revoked_at is None:
        token.revoked_at = now
        audit.record(
            session,
            actor=principal.actor,
            account_id=token.account_id,
            action="token.revoke",
            target=f"token/{token.id}",
            before=None,
            after={"revoked_at": now.isoformat()},
            now=now,
        )
        session.commit()
    return token


def products_of(session: Session, account_id: str) -> list[str]:
    """The products an account has purchased, sorted."""
    rows = session.scalars(select(AccountProduct.product).where(AccountProduct.account_id == account_id))
    return sorted(rows)
