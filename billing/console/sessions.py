"""Sign-in for the console: a one-time link or an API token becomes a browser session.

Secrets (the link's and the session's) are random, shown once, and stored only as SHA-256.
Every request resolves the session to the principal of its API token with one query that
also checks the token is not revoked and its person not removed, so revoking the token or
removing the person ends the session at once. Who may then do what is ``billing.access``'s
decision, the same as the API's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Connection, bindparam, delete, or_, select, update
from sqlalchemy.orm import Session

from billing.access import principal_for, token_hash
from billing.console.orm import ConsoleSession
from billing.domain.roles import Principal
from billing.orm import ApiToken, User

LINK, SESSION = "link", "session"
LINK_LIFETIME = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(hours=8)
LINK_PREFIX = "fml_"
REVEAL_LIFETIME = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Signed:
    """A session just started: the cookie's secret (shown this once) and its form token."""

    secret: str
    csrf: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Visit:
    """Who is behind a session cookie, and the session's form token."""

    principal: Principal
    csrf: str
    email: str | None


def create_link(session: Session, token_id: str, now: datetime) -> str:
    """A one-time sign-in link secret for an API token, valid for ``LINK_LIFETIME`` (caller commits)."""
    secret = LINK_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ConsoleSession(
            secret_hash=token_hash(secret),
            kind=LINK,
            token_id=token_id,
            csrf="",
            created_at=now,
            expires_at=now + LINK_LIFETIME,
        )
    )
    return secret


def redeem_link(session: Session, secret: str, now: datetime) -> Signed | None:
    """Use a sign-in link once: a session for its token, or None when unknown, used, expired or revoked."""
    ended = session.execute(
        update(ConsoleSession)
        .where(
            ConsoleSession.secret_hash == token_hash(secret),
            ConsoleSession.kind == LINK,
            ConsoleSession.ended_at.is_(None),
            ConsoleSession.expires_at > now,
        )
        .values(ended_at=now)
        .returning(ConsoleSession.token_id)
    ).first()
    if ended is None or _principal_by_token_id(session.connection(), ended[0]) is None:
        session.commit()
        return None
    return _start(session, ended[0], now)


def sign_in_with_token(session: Session, api_token: str, now: datetime) -> Signed | None:
    """A session for a person's API token, or None when the token is unknown, revoked or not a person's."""
    principal = principal_for(session, api_token.strip())
    if principal is None or principal.kind != "user":
        return None
    return _start(session, principal.token_id, now)


def _start(session: Session, token_id: str, now: datetime) -> Signed:
    secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    expires = now + SESSION_LIFETIME
    session.execute(  # the token's ended and expired rows are worth nothing: they go
        delete(ConsoleSession).where(
            ConsoleSession.token_id == token_id,
            or_(ConsoleSession.ended_at.is_not(None), ConsoleSession.expires_at <= now),
        )
    )
    session.add(
        ConsoleSession(
            secret_hash=token_hash(secret),
            kind=SESSION,
            token_id=token_id,
            csrf=csrf,
            created_at=now,
            expires_at=expires,
        )
    )
    session.commit()
    return Signed(secret, csrf, expires)


_VISIT = (
    select(
        ConsoleSession.csrf,
        ApiToken.id,
        ApiToken.account_id,
        User.id,
        User.role,
        User.account_id,
        User.email,
    )
    .join(ApiToken, ApiToken.id == ConsoleSession.token_id)
    .join(User, (User.id == ApiToken.user_id) & User.removed_at.is_(None))
    .where(
        ConsoleSession.secret_hash == bindparam("secret_hash"),
        ConsoleSession.kind == SESSION,
        ConsoleSession.ended_at.is_(None),
        ConsoleSession.expires_at > bindparam("now"),
        ApiToken.revoked_at.is_(None),
        ApiToken.kind == "user",
    )
)


def visit(conn: Connection, secret: str, now: datetime) -> Visit | None:
    """The person behind a session cookie, in one query; None when it ended, expired or lost its token."""
    row = conn.execute(_VISIT, {"secret_hash": token_hash(secret), "now": now}).one_or_none()
    if row is None:
        return None
    csrf, token_id, _token_account, user_id, role, account_id, email = row
    return Visit(Principal(token_id, "user", role=role, account_id=account_id, user_id=user_id), csrf, email)


def _principal_by_token_id(conn: Connection, token_id: str) -> Principal | None:
    query = (
        select(ApiToken.id, User.id, User.role, User.account_id)
        .join(User, (User.id == ApiToken.user_id) & User.removed_at.is_(None))
        .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None), ApiToken.kind == "user")
    )
    row = conn.execute(query).one_or_none()
    if row is None:
        return None
    return Principal(row[0], "user", role=row[2], account_id=row[3], user_id=row[1])


def sign_out(session: Session, secret: str, now: datetime) -> None:
    """End a session for good (its cookie is worth nothing from now on)."""
    session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.secret_hash == token_hash(secret), ConsoleSession.ended_at.is_(None))
        .values(ended_at=now)
    )
    session.commit()


def csrf_matches(expected: str, given: str | None) -> bool:
    """Whether a posted form token is the session's (compared in constant time)."""
    return bool(given) and bool(expected) and hmac.compare_digest(expected, given or "")


def _sealer(cookie_secret: str) -> Fernet:
    """Authenticated encryption under a key only this browser's cookie can derive (Fernet: AES + HMAC)."""
    key = hmac.digest(cookie_secret.encode(), b"fanmeter console reveal", hashlib.sha256)
    return Fernet(base64.urlsafe_b64encode(key))


def keep_reveal(session: Session, cookie_secret: str, values: dict[str, str], now: datetime) -> None:
    """Keep ``values`` (a secret just issued) on the session's row for one view (caller commits).

    They are sealed with Fernet under a key derived from the cookie secret, so the database never
    holds them readable and only this browser's next request can read them back. A second keep
    before the view replaces the first.
    """
    plain = json.dumps({**values, "until": (now + REVEAL_LIFETIME).isoformat()}).encode()
    session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.secret_hash == token_hash(cookie_secret), ConsoleSession.kind == SESSION)
        .values(reveal=_sealer(cookie_secret).encrypt(plain).decode())
    )


def take_reveal(session: Session, cookie_secret: str, now: datetime) -> dict[str, str] | None:
    """The values kept by ``keep_reveal``, once: the row's copy is gone after this (it commits)."""
    mine = (ConsoleSession.secret_hash == token_hash(cookie_secret), ConsoleSession.kind == SESSION)
    taken = session.scalars(select(ConsoleSession.reveal).where(*mine)).first()
    if taken is not None:  # cleared only if still the same: of two requests at once, one shows it
        cleared = session.execute(
            update(ConsoleSession).where(*mine, ConsoleSession.reveal == taken).values(reveal=None)
        ).rowcount  # type: ignore[attr-defined]
        taken = taken if cleared == 1 else None
    session.commit()
    if taken is None:
        return None
    try:
        values: dict[str, str] = json.loads(_sealer(cookie_secret).decrypt(taken.encode()))
    except InvalidToken:  # sealed for another cookie, or altered
        return None
    if datetime.fromisoformat(values.pop("until")) <= now:
        return None
    return values
