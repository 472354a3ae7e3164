"""Account people's pages: usage with its daily charts and projection, and services with their backends."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from billing import accounts, catalog, csv_safe
from billing.access import require
from billing.alerts import thresholds as alert_thresholds
from billing.api import downloads
from billing.console import charts
from billing.console.views.finance import _parse, recent_months
from billing.console.web import Page, PageDep
from billing.domain.roles import Action
from billing.orm import Account
from kernel.instants import Month, to_micros
from metering import service as metering_service

router = APIRouter()
CSV_COLUMNS = ("day", "service_id", "connection_minutes", "messages_published", "messages_delivered", "bytes_out")


@dataclass(frozen=True)
class Figure:
    label: str
    measure: str
    value: int
    projected: int | None


def projection(value: int, elapsed_days: int, days: int) -> int:
    """Month-end estimate at the month's pace so far: ``value / elapsed × days`` (an estimate, not a bill)."""
    return value if elapsed_days >= days or elapsed_days <= 0 else round(value * days / elapsed_days)


@router.get("/accounts/{account_id}/usage")
def usage(page: PageDep, account_id: str, month: str | None = None, service: str | None = None) -> Response:
    """Month to date or a past month: totals, a projection for the current month, daily charts."""
    require(page.principal, Action.READ_USAGE, account_id)
    accounts.require_account_on(page.db.connection(), account_id)
    current = Month.of(to_micros(page.now))
    chosen = _parse(month) if month else current
    rows = metering_service.daily_usage_on(page.db.connection(), account_id, chosen)
    service_ids = sorted({row.service_id for row in rows})
    service = service if service in service_ids else None
    totals = charts.daily_totals(rows, service)
    days = charts.days_of(chosen)
    elapsed = (page.now.date() - chosen.first_day).days + 1 if chosen == current else len(days)
    figures = []
    for measure, label, _ in charts.MEASURES:
        value = sum(day[measure] for day in totals.values())
        projected = projection(value, elapsed, len(days)) if chosen == current else None
        figures.append(Figure(label, measure, value, projected))
    per_service = []
    for service_id in service_ids:
        sums = charts.daily_totals(rows, service_id)
        per_service.append((service_id, {m: sum(d[m] for d in sums.values()) for m, _, _ in charts.MEASURES}))
    return page.render(
        "usage.html",
        title=f"Usage · {chosen}",
        account_id=account_id,
        month=str(chosen),
        months=recent_months(page),
        is_current=chosen == current,
        elapsed=elapsed,
        days=len(days),
        figures=figures,
        charts=charts.charts(chosen, totals) if rows else [],
        service_ids=service_ids,
        service=service,
        per_service=per_service,
        **_alerts(page, account_id, chosen),
    )


def _alerts(page: Page, account_id: str, month: Month) -> dict[str, Any]:
    """The month's crossings (the banners) and the account's thresholds, as the API shows them to this person."""
    crossed = alert_thresholds.crossings_of(page.db, page.principal, account_id, month)
    watched = alert_thresholds.list_thresholds(page.db, page.principal, account_id)
    fired = {c.threshold_id for c in crossed}
    labels = {m.value: label for m, label in alert_thresholds.MEASURE_LABELS.items()}
    account = page.db.get(Account, account_id)
    return {
        "currency": account.currency if account else "USD",
        "crossings": [c.to_json() | {"label": labels[c.measure.value]} for c in crossed],
        "thresholds": [t.to_json() | {"label": labels[t.measure.value], "crossed": t.id in fired} for t in watched],
    }


@router.get("/accounts/{account_id}/usage.csv")
def usage_csv(page: PageDep, account_id: str, month: str | None = None) -> Response:
    require(page.principal, Action.READ_USAGE, account_id)
    accounts.require_account_on(page.db.connection(), account_id)
    chosen = _parse(month) if month else Month.of(to_micros(page.now))
    out = io.StringIO()
    writer = csv_safe.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in metering_service.daily_usage_on(page.db.connection(), account_id, chosen):
        writer.writerow([getattr(row, column) for column in CSV_COLUMNS])
    headers = downloads.attachment(f"usage-{account_id}-{chosen}.csv")
    return Response(out.getvalue(), media_type="text/csv", headers=headers)


@router.get("/accounts/{account_id}/services")
def services(page: PageDep, account_id: str) -> Response:
    """The account's services: type, Fanout state, backends with their TLS status."""
    require(page.principal, Action.READ_SERVICES, account_id)
    accounts.get_account(page.db, account_id)
    listed = [(s, catalog.list_backends(page.db, s.id)) for s in catalog.list_services(page.db, account_id)]
    return page.render("services.html", title="Services", account_id=account_id, services=listed)
