"""``fanmeter admin`` (serve the admin API) and ``fanmeter token create`` (bootstrap people)."""

from __future__ import annotations

from datetime import UTC, datetime

import click
import uvicorn
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from billing import accounts
from billing.access import issue
from billing.console import links as console_links
from billing.console import sessions as console_sessions
from billing.domain.exceptions import BillingError
from billing.domain.roles import PLATFORM_ROLES, ROLES, Principal
from billing.orm import User
from billing.settings import BillingSettings
from fanmeter.schema import SchemaOutOfDate, require_current_schema
from metering.bootstrap import bootstrap

# The audit log's name for changes made from this command line, not through a token.
CLI_ACTOR = Principal(token_id="cli", kind="user", role="admin", user_id="cli")


def _engine_at_head() -> Engine:
    runtime = bootstrap()
    try:
        require_current_schema(runtime.engine)
    except SchemaOutOfDate as error:
        raise click.ClickException(str(error)) from None
    return runtime.engine


@click.command()
@click.option("--host", help="Interface to listen on (default FANMETER_ADMIN_HOST or 127.0.0.1).")
@click.option("--port", type=int, help="Port (default FANMETER_ADMIN_PORT or 8480).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Server processes.")
def admin(host: str | None, port: int | None, workers: int) -> None:
    """Serve the admin API (OpenAPI at /docs) with uvicorn."""
    settings = BillingSettings()
    _engine_at_head().dispose()  # refuse to start on an old schema; each server process opens its own engine
    host, port = host or settings.admin_host, port or settings.admin_port
    click.echo(f"fanmeter admin on http://{host}:{port} (OpenAPI at http://{host}:{port}/docs), {workers} worker(s)")
    uvicorn.run(
        "billing.bootstrap:bootstrap_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        http="billing.api.server:limited_http",  # heads and bodies limited and timed (kernel.http_limits)
    )


@click.group()
def token() -> None:
    """API tokens from the command line (the first platform admin has no other way in)."""


@token.command("create")
@click.option("--role", type=click.Choice(ROLES), required=True, help="The person's role.")
@click.option("--email", help="The person's email (default: <role>@fanmeter.local).")
@click.option("--account", "account_id", help="The account, for account roles.")
@click.option("--name", default="cli token", show_default=True, help="A label for the token.")
@click.option("--login-link", is_flag=True, help="Also print a one-time console sign-in link (15 minutes).")
def token_create(role: str, email: str | None, account_id: str | None, name: str, login_link: bool) -> None:
    """Create a person with ROLE (or reuse the one with EMAIL) and print a new token for them, once."""
    if role not in PLATFORM_ROLES and account_id is None:
        raise click.UsageError(f"--account is required for the account role {role!r}")
    email = email or f"{role}@fanmeter.local"
    now = datetime.now(UTC)
    with Session(_engine_at_head(), expire_on_commit=False) as session:
        try:
            user = _existing_user(session, email, role, account_id)
            if user is None:
                if account_id is not None:
                    accounts.get_account(session, account_id)
                user = accounts.create_user(session, CLI_ACTOR, account_id=account_id, email=email, role=role, now=now)
            issued = issue(session, kind="user", name=name, now=now, user_id=user.id, account_id=user.account_id)
            session.flush()
            link = console_sessions.create_link(session, issued.row.id, now) if login_link else None
            session.commit()
        except BillingError as error:
            raise click.ClickException(str(error)) from None
    click.echo(f"user {user.id} ({email}, {role}); token {issued.row.id}:")
    if link is not None:
        click.echo(f"sign-in link (once, 15 minutes): {console_links.sign_in_url(link)}")
    click.echo(issued.secret)


def _existing_user(session: Session, email: str, role: str, account_id: str | None) -> User | None:
    for user in accounts.list_users(session, account_id):
        if user.email == email:
            if user.role != role:
                raise click.ClickException(f"{email} already exists with role {user.role!r}, not {role!r}")
            return user
    return None
