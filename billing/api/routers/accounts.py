"""Accounts, their users and tokens (admin and superuser)."""

from __future__ import annotations

from fastapi import APIRouter, status
from sqlalchemy.orm import Session

from billing import accounts
from billing.access import require, require_on
from billing.api.deps import CallerDep, NowDep, SessionDep
from billing.api.schemas import AccountIn, AccountOut, NewTokenOut, PlanIn, TokenIn, TokenOut, UserIn, UserOut
from billing.domain.exceptions import PermissionDenied
from billing.domain.roles import Action, Principal
from billing.orm import Account, ApiToken, User

router = APIRouter(prefix="/v1", tags=["accounts"])


def _account_out(session: Session, account: Account) -> AccountOut:
    return AccountOut(**accounts.account_json(account), products=accounts.products_of(session, account.id))


def _token_out(token: ApiToken) -> TokenOut:
    return TokenOut.model_validate(accounts.token_json(token))


@router.post("/accounts", status_code=status.HTTP_201_CREATED, response_model=AccountOut)
def create_account(body: AccountIn, session: SessionDep, caller: CallerDep, now: NowDep) -> AccountOut:
    """Create an account, paid or trial (platform admin)."""
    require(caller, Action.MANAGE_ACCOUNTS, None)
    account = accounts.create_account(
        session, caller, name=body.name, plan=body.plan, currency=body.currency, account_id=body.id, now=now
    )
    return _account_out(session, account)


@router.get("/accounts", response_model=list[AccountOut])
def list_accounts(session: SessionDep, caller: CallerDep) -> list[AccountOut]:
    """Every account for platform people; the caller's own account for account users."""
    require(caller, Action.READ_ACCOUNT, caller.account_id)
    return [_account_out(session, account) for account in accounts.list_accounts(session, caller)]


@router.get("/accounts/{account_id}", response_model=AccountOut)
def get_account(account_id: str, session: SessionDep, caller: CallerDep) -> AccountOut:
    """One account, with the products it has purchased."""
    require(caller, Action.READ_ACCOUNT, account_id)
    return _account_out(session, accounts.get_account(session, account_id))


@router.put("/accounts/{account_id}/plan", response_model=AccountOut)
def set_plan(account_id: str, body: PlanIn, session: SessionDep, caller: CallerDep, now: NowDep) -> AccountOut:
    """Mark an account paid or trial (platform admin); audited."""
    require(caller, Action.MANAGE_ACCOUNTS, account_id)
    return _account_out(session, accounts.set_plan(session, caller, account_id, body.plan, now))


@router.get("/accounts/{account_id}/users", response_model=list[UserOut])
def list_users(account_id: str, session: SessionDep, caller: CallerDep) -> list[UserOut]:
    """The account's users."""
    require(caller, Action.MANAGE_PEOPLE, account_id)
    accounts.get_account(session, account_id)
    return [UserOut.model_validate(accounts.user_json(user)) for user in accounts.list_users(session, account_id)]


@router.post("/accounts/{account_id}/users", status_code=status.HTTP_201_CREATED, response_model=UserOut)
def create_user(account_id: str, body: UserIn, session: SessionDep, caller: CallerDep, now: NowDep) -> UserOut:
    """Add a person to the account with one of the account roles."""
    require(caller, Action.MANAGE_PEOPLE, account_id)
    accounts.get_account(session, account_id)
    user = accounts.create_user(session, caller, account_id=account_id, email=body.email, role=body.role, now=now)
    return UserOut.model_validate(accounts.user_json(user))


@router.get("/platform/users", response_model=list[UserOut])
def list_platform_users(session: SessionDep, caller: CallerDep) -> list[UserOut]:
    """The platform's admin and finance people."""
    require(caller, Action.MANAGE_PEOPLE, None)
    return [UserOut.model_validate(accounts.user_json(user)) for user in accounts.list_users(session, None)]


@router.post("/platform/users", status_code=status.HTTP_201_CREATED, response_model=UserOut)
def create_platform_user(body: UserIn, session: SessionDep, caller: CallerDep, now: NowDep) -> UserOut:
    """Add a platform admin or finance person (platform admin)."""
    require(caller, Action.MANAGE_PEOPLE, None)
    user = accounts.create_user(session, caller, account_id=None, email=body.email, role=body.role, now=now)
    return UserOut.model_validate(accounts.user_json(user))


def _require_user_manager(caller: Principal, user: User) -> None:
    """People may manage their own tokens; managing others' needs the people-management right."""
    if caller.user_id != user.id:
        require_on(caller, Action.MANAGE_PEOPLE, user.account_id, f"no user {user.id!r}")


@router.delete("/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_user(user_id: str, session: SessionDep, caller: CallerDep, now: NowDep) -> None:
    """Remove a person; their tokens stop working at once."""
    user = accounts.get_user(session, user_id)
    require_on(caller, Action.MANAGE_PEOPLE, user.account_id, f"no user {user_id!r}")
    if caller.user_id == user.id:
        raise PermissionDenied("you cannot remove yourself; ask another admin or superuser")
    accounts.remove_user(session, caller, user, now)


@router.post("/users/{user_id}/tokens", status_code=status.HTTP_201_CREATED, response_model=NewTokenOut)
def create_token(user_id: str, body: TokenIn, session: SessionDep, caller: CallerDep, now: NowDep) -> NewTokenOut:
    """Issue an API token for a person; the secret is in this response only."""
    user = accounts.get_user(session, user_id)
    _require_user_manager(caller, user)
    issued = accounts.create_user_token(session, caller, user, body.name, now)
    return NewTokenOut(**_token_out(issued.row).model_dump(), token=issued.secret)


@router.get("/accounts/{account_id}/tokens", response_model=list[TokenOut])
def list_tokens(account_id: str, session: SessionDep, caller: CallerDep) -> list[TokenOut]:
    """The account's tokens (never their secrets)."""
    require(caller, Action.MANAGE_PEOPLE, account_id)
    accounts.get_account(session, account_id)
    return [_token_out(token) for token in accounts.list_tokens(session, account_id)]


@router.delete("/tokens/{token_id}", response_model=TokenOut)
def revoke_token(token_id: str, session: SessionDep, caller: CallerDep, now: NowDep) -> TokenOut:
    """Revoke a token for good."""
    token = accounts.get_token(session, token_id)
    if token.user_id is None or token.user_id != caller.user_id:
        require_on(caller, Action.MANAGE_PEOPLE, token.account_id, f"no token {token_id!r}")
    return _token_out(accounts.revoke_token(session, caller, token, now))
