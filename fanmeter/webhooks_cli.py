"""``fanmeter webhooks``: webhook endpoints from the command line, their delivery log, and a delivery pass.

Changes go through the same service as the API (``billing.webhooks.endpoints``) and are audited
as ``cli``: platform-wide endpoints as the platform admin of the command line, an account's
(``--account``) as acting for that account's superuser, whose endpoints they are.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click
from sqlalchemy.orm import Session

from billing.domain.exceptions import BillingError
from billing.domain.roles import SUPERUSER, Principal
from billing.settings import BillingSettings
from billing.webhooks import delivery, endpoints
from billing.webhooks.events import EVENT_TYPES
from billing.webhooks.orm import WebhookEndpoint
from fanmeter.admin_cli import CLI_ACTOR, _engine_at_head


def _actor(account_id: str | None) -> Principal:
    if account_id is None:
        return CLI_ACTOR
    return Principal(token_id="cli", kind="user", role=SUPERUSER, account_id=account_id, user_id="cli")


def _policy() -> endpoints.UrlPolicy:
    return endpoints.UrlPolicy(BillingSettings().allowed_networks)


def _endpoint(session: Session, endpoint_id: str) -> WebhookEndpoint:
    row = session.get(WebhookEndpoint, endpoint_id)
    if row is None:
        raise click.ClickException(f"no webhook endpoint {endpoint_id}")
    return row


def _print(rows: list[dict[str, Any]], output: str, columns: tuple[str, ...]) -> None:
    if output == "json":
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    click.echo("\t".join(columns))
    for row in rows:
        click.echo("\t".join("" if row[c] is None else str(row[c]) for c in columns))


@click.group()
def webhooks() -> None:
    """Webhook endpoints: signed events (Standard Webhooks) for statements, credit notes, alerts, Fanout."""


@webhooks.command("add")
@click.argument("url")
@click.option("--event", "event_types", multiple=True, type=click.Choice(EVENT_TYPES), help="Repeat; default: all.")
@click.option("--account", "account_id", help="The account whose events it receives (default: platform-wide).")
@click.option("--description", default="", help="What the endpoint is, for people.")
def add(url: str, event_types: tuple[str, ...], account_id: str | None, description: str) -> None:
    """Register URL for events and print its signing secret, this once."""
    wanted = list(event_types or EVENT_TYPES)
    now = datetime.now(UTC)
    with Session(_engine_at_head(), expire_on_commit=False) as session:
        try:
            issued = endpoints.register(
                session, _actor(account_id), account_id, url, wanted, description, _policy(), now
            )
        except BillingError as error:
            raise click.ClickException(str(error)) from None
    click.echo(f"endpoint {issued.row.id}: {url} ({', '.join(issued.row.event_types)})")
    click.echo(f"signing secret (shown once): {issued.secret}")


@webhooks.command("list")
@click.option("--account", "account_id", help="The account's endpoints (default: the platform-wide ones).")
@click.option("--format", "output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def list_endpoints(account_id: str | None, output: str) -> None:
    """The endpoints, oldest first (never their secrets)."""
    with Session(_engine_at_head()) as session:
        try:
            rows = [
                endpoints.endpoint_json(r) for r in endpoints.list_endpoints(session, _actor(account_id), account_id)
            ]
        except BillingError as error:
            raise click.ClickException(str(error)) from None
    _print(rows, output, ("id", "url", "enabled", "event_types", "disabled_reason"))


@webhooks.command("log")
@click.argument("endpoint_id")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--format", "output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def log(endpoint_id: str, limit: int, output: str) -> None:
    """The endpoint's delivery log, newest event first: status, attempts, last answer, next retry."""
    with Session(_engine_at_head()) as session:
        rows = [entry.to_json() for entry in endpoints.delivery_log(session, _endpoint(session, endpoint_id), limit)]
    columns = ("delivery_id", "event_id", "event_type", "status", "attempts", "last_response_code", "next_attempt_at")
    _print(rows, output, (*columns, "last_error"))


@webhooks.command("redeliver")
@click.argument("endpoint_id")
@click.argument("delivery_id", type=int)
def redeliver(endpoint_id: str, delivery_id: int) -> None:
    """Send one delivery of the log again at once, with a new day of retries."""
    with Session(_engine_at_head()) as session:
        row = _endpoint(session, endpoint_id)
        try:
            endpoints.redeliver(session, _actor(row.account_id), row, delivery_id, datetime.now(UTC))
        except BillingError as error:
            raise click.ClickException(str(error)) from None
    click.echo(f"delivery {delivery_id} of {endpoint_id} queued again")


@webhooks.command("enable")
@click.argument("endpoint_id")
def enable(endpoint_id: str) -> None:
    """Enable an endpoint (disabled by hand or after a day of failures); what waited is sent in order."""
    _set_enabled(endpoint_id, True)


@webhooks.command("disable")
@click.argument("endpoint_id")
def disable(endpoint_id: str) -> None:
    """Disable an endpoint: nothing is sent to it, and it receives no new events, until enabled."""
    _set_enabled(endpoint_id, False)


def _set_enabled(endpoint_id: str, enabled: bool) -> None:
    with Session(_engine_at_head()) as session:
        row = _endpoint(session, endpoint_id)
        endpoints.set_enabled(session, _actor(row.account_id), row, enabled, datetime.now(UTC))
    click.echo(f"{endpoint_id} {'enabled' if enabled else 'disabled'}")


@webhooks.command("deliver")
def deliver() -> None:
    """Run one delivery pass now (what the worker's beat does every 5 s) and print what it did."""
    config = delivery.DeliveryConfig(urls=_policy())
    run = delivery.deliver_due(_engine_at_head(), config)
    click.echo(
        f"{run.endpoints} endpoint(s): {run.delivered} delivered, {run.failed_attempts} failed attempt(s), "
        f"{run.disabled} disabled"
    )
