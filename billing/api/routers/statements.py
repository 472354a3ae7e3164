"""Statements: list, read (JSON, CSV, PDF, with their credit notes), regenerate drafts, finalize, add adjustments."""

from __future__ import annotations

import io
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Response, status

from billing import credit_notes, csv_safe, statements
from billing.access import require
from billing.api.deps import CallerDep, NowDep, SessionDep, SettingsDep
from billing.api.downloads import attachment
from billing.api.routers.rate_cards import parse_month
from billing.api.statement_schemas import AdjustmentIn, AdjustmentOut, MonthPath, StatementOut, StatementSummaryOut
from billing.domain.credit_notes import statement_csv_rows
from billing.domain.ledger import adjustment_amount
from billing.domain.roles import Action
from billing.orm import Adjustment
from billing.pdf import render_pdf

router = APIRouter(prefix="/v1/accounts/{account_id}/statements", tags=["statements"])
_CSV: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {}}, "description": "The statement as CSV."}}
_PDF: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/pdf": {}}, "description": "The statement as PDF."}
}


@router.get("", response_model=list[StatementSummaryOut])
def list_statements(account_id: str, session: SessionDep, caller: CallerDep, now: NowDep) -> list[StatementSummaryOut]:
    """The current month's open estimate, then every stored statement, newest first."""
    require(caller, Action.READ_STATEMENTS, account_id)
    return [StatementSummaryOut(**asdict(s)) for s in statements.list_statements(session, account_id, now)]


@router.get("/{month}.csv", response_class=Response, responses=_CSV)
def statement_csv(account_id: str, month: MonthPath, session: SessionDep, caller: CallerDep) -> Response:
    """The statement as CSV: the lines, subtotal and total rows, then its credit notes, credited and remaining."""
    require(caller, Action.READ_STATEMENTS, account_id)
    statement = statements.statement_of(session, account_id, parse_month(month))
    notes = credit_notes.notes_of(session, account_id, parse_month(month))
    buffer = io.StringIO()
    csv_safe.writer(buffer).writerows(statement_csv_rows(statement, notes))
    return Response(buffer.getvalue(), media_type="text/csv", headers=attachment(f"statement-{account_id}-{month}.csv"))


@router.get("/{month}.pdf", response_class=Response, responses=_PDF)
def statement_pdf(account_id: str, month: MonthPath, session: SessionDep, caller: CallerDep) -> Response:
    """The statement as a PDF a finance team can send."""
    require(caller, Action.READ_STATEMENTS, account_id)
    statement = statements.statement_of(session, account_id, parse_month(month))
    notes = credit_notes.notes_of(session, account_id, parse_month(month))
    headers = attachment(f"statement-{account_id}-{month}.pdf")
    return Response(render_pdf(statement, notes), media_type="application/pdf", headers=headers)


@router.get("/{month}", response_model=StatementOut)
def get_statement(account_id: str, month: MonthPath, session: SessionDep, caller: CallerDep) -> StatementOut:
    """The statement of a month (DESIGN.md's statement JSON): stored draft or finalized, else the open estimate.

    It also lists the credit notes issued against it, what they credited and what remains; the
    content hash covers the finalized body, not these.
    """
    require(caller, Action.READ_STATEMENTS, account_id)
    return StatementOut.model_validate(credit_notes.statement_view(session, account_id, parse_month(month)))


@router.post("/{month}/regenerate", response_model=StatementOut)
def regenerate(account_id: str, month: MonthPath, session: SessionDep, caller: CallerDep, now: NowDep) -> StatementOut:
    """Rebuild the draft of a closed month from current usage (finance); a finalized statement answers 409."""
    require(caller, Action.MANAGE_STATEMENTS, account_id)
    body = statements.regenerate(session, caller, account_id, parse_month(month), now)
    return StatementOut.model_validate(credit_notes.annotated(session, body))


@router.post("/{month}/finalize", response_model=StatementOut)
def finalize(
    account_id: str, month: MonthPath, session: SessionDep, caller: CallerDep, now: NowDep, settings: SettingsDep
) -> StatementOut:
    """Finalize the draft as reviewed: numbered (FM-2026-000123), hashed, immutable (finance); again answers 409."""
    require(caller, Action.MANAGE_STATEMENTS, account_id)
    body = statements.finalize(session, caller, account_id, parse_month(month), now, settings.numbering)
    return StatementOut.model_validate(credit_notes.annotated(session, body))


@router.get("/{month}/adjustments", response_model=list[AdjustmentOut])
def list_adjustments(account_id: str, month: MonthPath, session: SessionDep, caller: CallerDep) -> list[AdjustmentOut]:
    """The adjustments and credits finance added to a month."""
    require(caller, Action.READ_STATEMENTS, account_id)
    return [_adjustment_out(a) for a in statements.adjustments_of(session, account_id, parse_month(month))]


@router.post("/{month}/adjustments", status_code=status.HTTP_201_CREATED, response_model=AdjustmentOut)
def add_adjustment(
    account_id: str, month: MonthPath, body: AdjustmentIn, session: SessionDep, caller: CallerDep, now: NowDep
) -> AdjustmentOut:
    """Add an adjustment or credit (negative) with a reason (finance); refused with 409 on a finalized month."""
    require(caller, Action.MANAGE_STATEMENTS, account_id)
    row = statements.add_adjustment(
        session,
        caller,
        account_id,
        parse_month(month),
        amount=adjustment_amount(body.amount),
        reason=body.reason,
        service_id=body.service_id,
        now=now,
    )
    return _adjustment_out(row)


def _adjustment_out(row: Adjustment) -> AdjustmentOut:
    return AdjustmentOut(
        id=row.id,
        account_id=row.account_id,
        month=row.month,
        amount=format(row.amount, "f"),
        reason=row.reason,
        service_id=row.service_id,
        created_at=row.created_at,
        created_by=row.created_by,
    )
