"""API tokens: made once, shown once, kept only as a SHA-256, revocable; a token names a principal."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from billing.domain.exceptions import NotFound, PermissionDenied
from billing.domain.roles import Action, Principal, Verdict, decide
from billing.orm import ApiToken, User

TOKEN_PREFIX = "fm_"


def new_id(prefix: str) -> str:
    """A short random id for something users see, e.g. ``acc_3f9a1c2b7d4e5f60``."""
    return f"{prefix}_{secrets.token_hex(8)}"


def token_hash(secret: str) -> str:
    """The only form in which a token is stored: the hex SHA-256 of its text."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    """A token just created: ``secret`` is shown to its owner this once and never again."""

    row: ApiToken
    secret: str


def issue(
    session: Session,
    *,
    kind: str,
    name: str,
    now: datetime,
    user_id: str | None = None,
    account_id: str | None = None,
    service_id: str | None = None,
) -> IssuedToken:
    """Create a token in the caller's transaction and return its secret once."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        id=new_id("tok"),
        kind=kind,
        token_hash=token_hash(secret),
        prefix=secret[:10],
        name=name,
        user_id=user_id,
        account_id=account_id,
        service_id=service_id,
        created_at=now,
    )
    session.add(row)
    return IssuedToken(row, secret)


# Built once: every request authenticates, and building the statement cost more than running it.
# One round trip: the token and its person come together (Core: no ORM work on the hot path).
_PRINCIPAL_QUERY = (
    select(ApiToken.id, ApiToken.kind, ApiToken.account_id, ApiToken.service_id, User.id, User.role, User.account_id)
    .outerjoin(User, (User.id == ApiToken.user_id) & User.removed_at.is_(None))
    .where(ApiToken.token_hash == bindparam("token_hash"), ApiToken.revoked_at.is_(None))
)


def principal_for(session: Session, secret: str) -> Principal | None:
    """Who a bearer token speaks for, or None when it is unknown, revoked or its user removed."""
    return principal_on(session.connection(), secret)


def principal_on(conn: Connection, secret: str) -> Principal | None:
    """``principal_for`` on a connection the caller holds."""
    row = conn.execute(_PRINCIPAL_QUERY, {"token_hash": token_hash(secret)}).one_or_none()
    if row is None:
        return None
    token_id, kind, account_id, service_id, user_id, role, user_account_id = row
    if kind != "user":
        return Principal(token_id, kind, account_id=account_id, service_id=service_id)
    if user_id is None:  # the person was removed
        return None
    return Principal(token_id, "user", role=role, account_id=user_account_id, user_id=user_id)


def require(principal: Principal, action: Action, account_id: str | None) -> None:
    """Raise unless the role table lets ``principal`` take ``action`` on ``account_id``.

    Another account's resources raise ``NotFound``, exactly like a missing one.
    """
    verdict = decide(principal, action, account_id)
    if verdict is Verdict.HIDE:
        raise NotFound("not found")
    if verdict is Verdict.DENY:
        raise PermissionDenied(f"the {principal.role or principal.kind} role may not {action.value}")


def require_on(principal: Principal, action: Action, owner_account_id: str | None, missing: str) -> None:
    """``require`` for an object fetched by id, owned by ``owner_account_id`` (None: the platform's).

    Anyone but a platform person is told ``NotFound(missing)``, exactly what an unknown id gets, for
    an object outside their own account: another account's and the platform's alike (a superuser
    revoking an admin's token learns nothing from a 403). Within their account, ``require`` decides.
    """
    platform_person = principal.kind == "user" and principal.account_id is None
    if not platform_person and (owner_account_id is None or owner_account_id != principal.account_id):
        raise NotFound(missing)
    require(principal, action, owner_account_id)
