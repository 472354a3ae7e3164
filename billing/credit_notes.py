"""Credit notes against finalized statements: issue one, read them, and show them with their statement.

The rules are in ``billing.domain.credit_notes``; this module loads the statement and its earlier
credit notes, calls them, and writes the credit note, its number and its audit entry in one
transaction. There is no update path: a credit note, once issued, is only read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import audit, statements
from billing.domain import ledger
from billing.domain import numbering as numbering_rules
from billing.domain.credit_notes import (
    CreditNote,
    CreditRequest,
    credit_lines,
    credit_note_from_json,
    with_credit_notes,
)
from billing.domain.exceptions import Conflict, NotFound
from billing.domain.numbering import Numbering
from billing.domain.roles import Principal
from billing.orm import Account, CreditNoteRecord, StatementRecord
from billing.webhooks import events as webhook_events
from billing.webhooks import outbox, payloads
from kernel.instants import Month


def issue(
    session: Session,
    principal: Principal,
    account_id: str,
    month: Month,
    request: CreditRequest,
    now: datetime,
    numbering: Numbering = statements.DEFAULT_NUMBERING,
) -> CreditNote:
    """Issue a credit note against the account's finalized statement of ``month`` (409 if not finalized).

    The statement row is locked first, so two credit notes against one statement are checked
    against what remains one after the other; the number comes from the credit-note sequence.
    """
    _require_account(session, account_id)
    record = _locked_statement(session, account_id, month)
    statement = ledger.statement_from_json(record.body)
    lines = credit_lines(statement, notes_of(session, account_id, month), request)
    number = statements.take_number(session.connection(), numbering, numbering_rules.CREDIT_NOTE, now)
    note = CreditNote(
        number,
        account_id,
        month,
        record.number or "",
        record.content_hash or "",
        statement.currency,
        request.reason,
        lines,
        now,
        principal.actor,
    )
    _insert(session, record, note, principal)
    session.commit()
    return note


def _locked_statement(session: Session, account_id: str, month: Month) -> StatementRecord:
    query = select(StatementRecord).where(StatementRecord.account_id == account_id, StatementRecord.month == str(month))
    record = session.scalars(query.with_for_update().execution_options(populate_existing=True)).one_or_none()
    if record is None:
        raise Conflict(
            f"{account_id} has no finalized statement for {month}: credit notes correct finalized statements"
        )
    return record


def _insert(session: Session, record: StatementRecord, note: CreditNote, principal: Principal) -> None:
    """Add the credit note's row and its audit entry to the transaction (the only write of a credit note)."""
    body = note.to_json()
    session.add(
        CreditNoteRecord(
            number=note.number,
            statement_id=record.id,
            account_id=note.account_id,
            month=str(note.month),
            total=note.total,
            body=body,
            issued_at=note.issued_at,
            issued_by=note.issued_by,
        )
    )
    audit.record(
        session,
        actor=principal.actor,
        account_id=note.account_id,
        action="credit_note.issue",
        target=f"statement/{note.account_id}/{note.month}",
        before=None,
        after={key: body[key] for key in ("number", "statement_number", "total", "reason", "content_hash")},
        now=note.issued_at,
    )
    issued = payloads.credit_note_data(body)
    outbox.record_event(
        session.connection(), webhook_events.CREDIT_NOTE_ISSUED, note.account_id, issued, now=note.issued_at
    )


def notes_of(session: Session, account_id: str, month: Month) -> list[CreditNote]:
    """The credit notes issued against an account's statement of ``month``, oldest first."""
    query = select(CreditNoteRecord.body).where(
        CreditNoteRecord.account_id == account_id, CreditNoteRecord.month == str(month)
    )
    return [credit_note_from_json(body) for body in session.scalars(query.order_by(CreditNoteRecord.id))]


def list_notes(session: Session, account_id: str, month: Month) -> list[CreditNote]:
    """The credit notes of an account's month (404 for an unknown account)."""
    _require_account(session, account_id)
    return notes_of(session, account_id, month)


def note_body(session: Session, account_id: str, month: Month, number: str) -> dict[str, Any]:
    """One credit note's JSON exactly as issued; 404 when the account's month has no such credit note."""
    _require_account(session, account_id)
    query = select(CreditNoteRecord.body).where(
        CreditNoteRecord.account_id == account_id,
        CreditNoteRecord.month == str(month),
        CreditNoteRecord.number == number,
    )
    body = session.scalars(query).one_or_none()
    if body is None:
        raise NotFound(f"no credit note {number!r} on the statement of {account_id} for {month}")
    return dict(body)


def note_of(session: Session, account_id: str, month: Month, number: str) -> CreditNote:
    """One credit note as a value (404 as ``note_body``)."""
    return credit_note_from_json(note_body(session, account_id, month, number))


def annotated(session: Session, body: dict[str, Any]) -> dict[str, Any]:
    """A statement's JSON with its credit notes, what they credited and what remains (none unless finalized)."""
    finalized = body["status"] == ledger.FINALIZED
    notes = notes_of(session, body["account_id"], Month.parse(body["month"])) if finalized else []
    return with_credit_notes(body, notes)


def statement_view(session: Session, account_id: str, month: Month) -> dict[str, Any]:
    """The statement of a month with its credit notes (404 for an unknown account)."""
    return annotated(session, statements.statement_body(session, account_id, month))


def _require_account(session: Session, account_id: str) -> None:
    if session.get(Account, account_id) is None:
        raise NotFound(f"no account {account_id!r}")
