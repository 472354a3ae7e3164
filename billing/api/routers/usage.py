"""Usage per account, service and UTC day, month to date: JSON and a CSV download."""

from __future__ import annotations

import io
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from billing import accounts, csv_safe
from billing.access import require
from billing.api.deps import BearerDep, CallerDep, NowDep, SessionDep, authenticate
from billing.api.downloads import attachment
from billing.api.schemas_usage import DailyUsageOut, DailyUsageReportOut, UsageOut
from billing.domain.exceptions import RuleViolation
from billing.domain.roles import Action, Principal
from kernel.instants import Month, to_micros
from metering import service as metering_service
from metering.domain.usage import UsageReport

router = APIRouter(prefix="/v1", tags=["usage"])

MonthQuery = Annotated[
    str | None,
    Query(pattern=r"^\d{4}-\d{2}$", description="UTC month `YYYY-MM`; the current month (to date) by default."),
]
CSV_COLUMNS = ("day", "service_id", "connection_minutes", "messages_published", "messages_delivered", "bytes_out")


def _month(text: str | None, now_us: int) -> Month:
    if text is None:
        return Month.of(now_us)
    try:
        return Month.parse(text)
    except ValueError as error:
        raise RuleViolation(f"month: {error}") from None


def _authorized_month(caller: Principal, account_id: str, month: str | None, now_us: int) -> Month:
    require(caller, Action.READ_USAGE, account_id)
    return _month(month, now_us)


def _known(conn: Connection, account_id: str, has_rows: bool) -> None:
    """404 for a missing account; rows of usage already prove it exists (a round trip saved)."""
    if not has_rows:
        accounts.require_account_on(conn, account_id)


@router.get("/accounts/{account_id}/usage", response_model=UsageOut)
async def usage(
    account_id: str, request: Request, credentials: BearerDep, now: NowDep, month: MonthQuery = None
) -> JSONResponse:
    """The account's usage for a month, in total and per service."""
    # The busiest read of the API: authentication and the query share one connection and one
    # trip to the thread pool, where the session dependencies would take four.
    engine: Engine = request.app.state.read_engine
    report = await run_in_threadpool(_usage_json, engine, credentials, account_id, month, to_micros(now))
    # The report is already DESIGN.md's usage JSON (all integers, checked by the schema tests):
    # answering it directly spares validating and serialising it a second time per request.
    return JSONResponse(report)


def _usage_json(
    engine: Engine, credentials: HTTPAuthorizationCredentials | None, account_id: str, month: str | None, now_us: int
) -> dict[str, Any]:
    with engine.connect() as conn:
        caller = authenticate(conn, credentials)
        chosen = _authorized_month(caller, account_id, month, now_us)
        report = metering_service.usage_reports(conn, [chosen], [account_id]).get((account_id, chosen))
        _known(conn, account_id, report is not None)
    if report is None:  # no usage rows: the account exists (checked above) and used nothing
        report = UsageReport(account_id, chosen, ())
    return report.to_json()


def _daily(session: Session, account_id: str, month: Month) -> list[DailyUsageOut]:
    conn = session.connection()
    rows = metering_service.daily_usage_on(conn, account_id, month)
    _known(conn, account_id, bool(rows))
    return [
        DailyUsageOut(
            day=row.day,
            service_id=row.service_id,
            connection_minutes=row.connection_minutes,
            messages_published=row.messages_published,
            messages_delivered=row.messages_delivered,
            bytes_out=row.bytes_out,
        )
        for row in sorted(rows, key=lambda row: (row.day, row.service_id))
    ]


@router.get("/accounts/{account_id}/usage/daily", response_model=DailyUsageReportOut)
def daily_usage(
    account_id: str, session: SessionDep, caller: CallerDep, now: NowDep, month: MonthQuery = None
) -> DailyUsageReportOut:
    """The account's usage per service and UTC day for a month."""
    chosen = _authorized_month(caller, account_id, month, to_micros(now))
    return DailyUsageReportOut(account_id=account_id, month=str(chosen), days=_daily(session, account_id, chosen))


@router.get(
    "/accounts/{account_id}/usage.csv",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "One row per day and service."}
    },
)
def usage_csv(
    account_id: str, session: SessionDep, caller: CallerDep, now: NowDep, month: MonthQuery = None
) -> Response:
    """Download the account's daily usage for a month as CSV."""
    chosen = _authorized_month(caller, account_id, month, to_micros(now))
    out = io.StringIO()
    writer = csv_safe.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in _daily(session, account_id, chosen):
        writer.writerow([getattr(row, column) for column in CSV_COLUMNS])
    filename = f"usage-{account_id}-{chosen}.csv"
    return Response(out.getvalue(), media_type="text/csv", headers=attachment(filename))
