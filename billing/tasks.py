"""Celery tasks of billing: thin adapters over ``billing.statements``; each has an undecorated twin.

The beat entry ``statement-drafts`` (``BEAT_SCHEDULE``, composed into the worker by
``fanmeter/pipeline.py``) sends ``build_due_drafts`` every ``STATEMENT_DRAFT_SWEEP_SECONDS``;
the task builds the drafts of the latest month whose grace period
(``FANMETER_STATEMENT_GRACE_HOURS``) has passed. Rebuilding is idempotent, so a
redelivery or an extra run writes nothing new.

The beat entry ``usage-alerts`` sends ``check_usage_alerts`` every ``USAGE_ALERT_SWEEP_SECONDS``:
it checks the thresholds of the accounts whose usage changed since the last pass
(``billing.alerts.checker``); a crossing fires once per threshold and month, so a redelivery or
two passes at once fire nothing twice.

The beat entry ``webhook-deliveries`` sends ``deliver_webhooks`` every ``WEBHOOK_SWEEP_SECONDS``:
it sends each endpoint's due webhook events in order (``billing.webhooks.delivery``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import DBAPIError

from billing import statements
from billing.alerts import checker
from billing.settings import BillingSettings
from billing.webhooks import delivery
from billing.webhooks.endpoints import UrlPolicy
from metering.bootstrap import bootstrap
from metering.celery_app import app

TRANSIENT = (DBAPIError,)
# The beat's sweeps over every account ride out a database restart: retried with backoff up to 30 s.
SWEEP_RETRIES: dict[str, Any] = {
    "autoretry_for": TRANSIENT, "retry_backoff": 1, "retry_backoff_max": 30, "max_retries": 10,
}  # fmt: skip

# Statement drafts are built by the first sweep after a month closes plus the grace period
# (FANMETER_STATEMENT_GRACE_HOURS); rebuilding is idempotent.
STATEMENT_DRAFT_SWEEP_SECONDS = 900.0
# A pass reads every account's month in one grouped query and skips those whose usage did not
# change; a minute keeps an alert within a minute or two of the rollup that crossed it.
USAGE_ALERT_SWEEP_SECONDS = 60.0
# Webhooks: each sweep sends every endpoint's due events (billing/webhooks/delivery.py); a sweep
# waiting behind a slow one is dropped (expires): the next one sends what it would have sent.
WEBHOOK_SWEEP_SECONDS = 5.0
BEAT_SCHEDULE = {
    "statement-drafts": {"task": "billing.tasks.build_due_drafts", "schedule": STATEMENT_DRAFT_SWEEP_SECONDS},
    "usage-alerts": {"task": "billing.tasks.check_usage_alerts", "schedule": USAGE_ALERT_SWEEP_SECONDS},
    "webhook-deliveries": {
        "task": "billing.tasks.deliver_webhooks",
        "schedule": WEBHOOK_SWEEP_SECONDS,
        "options": {"expires": 2 * WEBHOOK_SWEEP_SECONDS},
    },
}  # lock contention, a draft inserted by a concurrent run, a database restart


def _instant(now: str | None) -> datetime | None:
    instant = None if now is None else datetime.fromisoformat(now)
    if instant is not None and instant.tzinfo is None:
        raise ValueError(f"now must carry a time zone, got {now!r}")
    return instant


def build_due_drafts_inner(now: datetime | None = None) -> statements.DraftRun:
    """Build the drafts that are due at ``now`` (the system clock when None) for every account."""
    runtime = bootstrap()
    grace = BillingSettings().statement_grace_hours
    return statements.build_due_drafts(runtime.engine, now or datetime.now(UTC), grace)


@app.task(name="billing.tasks.build_due_drafts", **SWEEP_RETRIES)
def build_due_drafts(now: str | None = None) -> dict[str, Any]:
    """``now`` (RFC 3339, with a zone) lets tests and operators build as of a given instant."""
    run = build_due_drafts_inner(_instant(now))
    return {"month": str(run.month), "created": run.created, "updated": run.updated, "unchanged": run.unchanged}


def check_usage_alerts_inner(now: datetime | None = None) -> checker.CheckRun:
    """Check the thresholds of every account whose usage changed, as of ``now`` (the system clock when None)."""
    runtime = bootstrap()
    grace = BillingSettings().statement_grace_hours
    return checker.check(runtime.engine, now or datetime.now(UTC), grace)


@app.task(name="billing.tasks.check_usage_alerts", **SWEEP_RETRIES)
def check_usage_alerts(now: str | None = None) -> dict[str, Any]:
    """``now`` (RFC 3339, with a zone) lets tests, benchmarks and operators check as of a given instant."""
    run = check_usage_alerts_inner(_instant(now))
    return {"months": [str(m) for m in run.months], "changed": run.changed, "checked": run.checked, "fired": run.fired}


def deliver_webhooks_inner() -> delivery.DeliveryRun:
    """Send every endpoint's due webhook events, each endpoint in order, the slow ones apart."""
    runtime = bootstrap()
    config = delivery.DeliveryConfig(urls=UrlPolicy(BillingSettings().allowed_networks))
    return delivery.deliver_due(runtime.engine, config)


@app.task(name="billing.tasks.deliver_webhooks", autoretry_for=TRANSIENT, retry_backoff=1, max_retries=3)
def deliver_webhooks() -> dict[str, int]:
    """Idempotent: an attempt is recorded before the next is made, and receivers dedupe on webhook-id."""
    run = deliver_webhooks_inner()
    return {"endpoints": run.endpoints, "delivered": run.delivered, "failed": run.failed_attempts}
