"""One-time console sign-in links for the command line (`token create --login-link`, `fanmeter up`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from billing.access import token_hash
from billing.console import sessions
from billing.orm import ApiToken
from billing.settings import BillingSettings


def sign_in_url(link_secret: str, base_url: str | None = None) -> str:
    """The console address that uses ``link_secret`` (the admin service's configured address by default)."""
    if base_url is None:
        settings = BillingSettings()
        base_url = f"http://{settings.admin_host}:{settings.admin_port}"
    return f"{base_url.rstrip('/')}/console/sign-in/link?secret={link_secret}"


def link_for_token(engine: Engine, api_secret: str, now: datetime, base_url: str | None = None) -> str:
    """A one-time sign-in link for a person's API token, given its secret (as `fanmeter up` holds them)."""
    with Session(engine) as session:
        token_id = session.scalars(select(ApiToken.id).where(ApiToken.token_hash == token_hash(api_secret))).one()
        secret = sessions.create_link(session, token_id, now)
        session.commit()
    return sign_in_url(secret, base_url)
