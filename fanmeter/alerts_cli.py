"""``fanmeter alerts``: an account's usage alert thresholds from the command line, and a checker pass on demand.

Changes are made as the platform admin of the command line (``CLI_ACTOR``, audited as ``cli``),
through the same service as the API (``billing.alerts.thresholds``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click
from sqlalchemy.orm import Session

from billing.alerts import checker, thresholds
from billing.domain.alerts import Measure
from billing.domain.exceptions import BillingError
from billing.settings import BillingSettings
from fanmeter.admin_cli import CLI_ACTOR, _engine_at_head
from kernel.instants import Month

MEASURES = [m.value for m in Measure]


@click.group()
def alerts() -> None:
    """Usage alert thresholds: each fires once a month (webhook, audit entry, console banner)."""


@alerts.command("set")
@click.argument("account_id")
@click.argument("measure", type=click.Choice(MEASURES))
@click.argument("limit")
@click.option("--name", default="", help="A name people recognise it by (default: measure and limit).")
def set_threshold(account_id: str, measure: str, limit: str, name: str) -> None:
    """Add a threshold: MEASURE reaching LIMIT (money in the account's currency, GB of 10^9 bytes)."""
    with Session(_engine_at_head(), expire_on_commit=False) as session:
        try:
            view = thresholds.set_threshold(session, CLI_ACTOR, account_id, measure, limit, name, datetime.now(UTC))
        except BillingError as error:
            raise click.ClickException(str(error)) from None
    click.echo(f"threshold {view.id}: {view.measure.value} reaching {view.to_json()['limit']} ({view.name})")


@alerts.command("list")
@click.argument("account_id")
@click.option("--format", "output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def list_thresholds(account_id: str, output: str) -> None:
    """The account's thresholds, and whether each was crossed this month."""
    now = datetime.now(UTC)
    with Session(_engine_at_head()) as session:
        try:
            views = thresholds.list_thresholds(session, CLI_ACTOR, account_id)
            crossed = thresholds.crossings_of(session, CLI_ACTOR, account_id, Month.of_day(now.date()))
        except BillingError as error:
            raise click.ClickException(str(error)) from None
    fired = {c.threshold_id for c in crossed}
    rows = [view.to_json() | {"crossed_this_month": view.id in fired} for view in views]
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        mark = "crossed" if row["crossed_this_month"] else "not reached"
        click.echo(f"{row['id']}  {row['measure']:<19} {row['limit']:>16}  {mark:<11}  {row['name']}")
    if not rows:
        click.echo(f"no thresholds on {account_id}")


@alerts.command("remove")
@click.argument("account_id")
@click.argument("threshold_id")
def remove_threshold(account_id: str, threshold_id: str) -> None:
    """Remove a threshold (its past crossings stay)."""
    with Session(_engine_at_head()) as session:
        try:
            thresholds.remove_threshold(session, CLI_ACTOR, account_id, threshold_id, datetime.now(UTC))
        except BillingError as error:
            raise click.ClickException(str(error)) from None
    click.echo(f"removed {threshold_id}")


@alerts.command("check")
@click.option("--now", "at", help="Check as of this RFC 3339 instant (with a zone); default: now.")
def check(at: str | None) -> None:
    """Run one checker pass now (the beat runs one every minute): fire the crossings found."""
    now = datetime.now(UTC) if at is None else datetime.fromisoformat(at)
    if now.tzinfo is None:
        raise click.UsageError(f"--now must carry a time zone, got {at!r}")
    run = checker.check(_engine_at_head(), now, BillingSettings().statement_grace_hours)
    months = ", ".join(str(m) for m in run.months)
    click.echo(
        f"checked {months}: {run.changed} account months changed, {run.checked} with thresholds, {run.fired} fired"
    )
