"""Credit notes against a finalized statement: issue one (finance), list them, read one as JSON, CSV or PDF."""

from __future__ import annotations

import io
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status

from billing import credit_notes, csv_safe
from billing.access import require
from billing.api.deps import CallerDep, NowDep, SessionDep, SettingsDep
from billing.api.downloads import attachment
from billing.api.routers.rate_cards import parse_month
from billing.api.statement_schemas import CreditNoteIn, CreditNoteOut, MonthPath, Refusal
from billing.domain.credit_notes import CreditRequest
from billing.domain.money import to_decimal
from billing.domain.roles import Action
from billing.pdf import render_credit_note_pdf

router = APIRouter(prefix="/v1/accounts/{account_id}/statements/{month}/credit-notes", tags=["credit notes"])
NumberPath = Annotated[
    str, Path(pattern=r"^[A-Z][A-Z0-9]{0,9}-([0-9]{4}-)?[0-9]{6,12}$", description="e.g. CN-2026-000007.")
]
_ISSUE_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {"model": Refusal, "description": "The statement is not finalized (a draft takes an adjustment)."},
    422: {"model": Refusal, "description": "More than remains of the statement or a line, not positive, malformed."},
}
_CSV: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {}}, "description": "The credit note as CSV."}}
_PDF: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/pdf": {}}, "description": "The credit note as PDF."}
}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CreditNoteOut, responses=_ISSUE_RESPONSES)
def issue(
    account_id: str,
    month: MonthPath,
    body: CreditNoteIn,
    session: SessionDep,
    caller: CallerDep,
    now: NowDep,
    settings: SettingsDep,
) -> CreditNoteOut:
    """Issue a credit note against the finalized statement (finance): a reason, and an amount per line or in whole."""
    require(caller, Action.MANAGE_STATEMENTS, account_id)
    request = CreditRequest(
        body.reason,
        tuple((line.line, to_decimal(line.amount)) for line in body.lines or ()),
        None if body.amount is None else to_decimal(body.amount),
    )
    note = credit_notes.issue(session, caller, account_id, parse_month(month), request, now, settings.numbering)
    return CreditNoteOut.model_validate(note.to_json())


@router.get("", response_model=list[CreditNoteOut])
def list_notes(account_id: str, month: MonthPath, session: SessionDep, caller: CallerDep) -> list[CreditNoteOut]:
    """The credit notes issued against the statement, oldest first."""
    require(caller, Action.READ_STATEMENTS, account_id)
    notes = credit_notes.list_notes(session, account_id, parse_month(month))
    return [CreditNoteOut.model_validate(note.to_json()) for note in notes]


@router.get("/{number}.csv", response_class=Response, responses=_CSV)
def note_csv(account_id: str, month: MonthPath, number: NumberPath, session: SessionDep, caller: CallerDep) -> Response:
    """The credit note as CSV: one row per line, then the total."""
    require(caller, Action.READ_STATEMENTS, account_id)
    note = credit_notes.note_of(session, account_id, parse_month(month), number)
    buffer = io.StringIO()
    csv_safe.writer(buffer).writerows(note.to_csv_rows())
    return Response(buffer.getvalue(), media_type="text/csv", headers=attachment(f"credit-note-{number}.csv"))


@router.get("/{number}.pdf", response_class=Response, responses=_PDF)
def note_pdf(account_id: str, month: MonthPath, number: NumberPath, session: SessionDep, caller: CallerDep) -> Response:
    """The credit note as a PDF a finance team can send."""
    require(caller, Action.READ_STATEMENTS, account_id)
    note = credit_notes.note_of(session, account_id, parse_month(month), number)
    headers = attachment(f"credit-note-{number}.pdf")
    return Response(render_credit_note_pdf(note), media_type="application/pdf", headers=headers)


@router.get("/{number}", response_model=CreditNoteOut)
def get_note(
    account_id: str, month: MonthPath, number: NumberPath, session: SessionDep, caller: CallerDep
) -> CreditNoteOut:
    """One credit note's JSON, exactly as issued (its content hash checks out)."""
    require(caller, Action.READ_STATEMENTS, account_id)
    return CreditNoteOut.model_validate(credit_notes.note_body(session, account_id, parse_month(month), number))
