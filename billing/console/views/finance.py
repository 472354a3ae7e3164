"""Statements: the month's list for finance, one statement with its actions, and its downloads."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import Response

from billing import credit_notes, csv_safe, statements
from billing.access import require
from billing.api import downloads
from billing.console import charts, listing
from billing.console.web import PREFIX, FormDep, Page, PageDep, redirect
from billing.domain import numbering as numbering_rules
from billing.domain.credit_notes import CreditRequest, credit_note_from_json, statement_csv_rows
from billing.domain.exceptions import BillingError, InvalidAmount, NotFound
from billing.domain.ledger import adjustment_amount, previous_month
from billing.domain.money import has_places, to_decimal
from billing.domain.numbering import Numbering
from billing.domain.roles import Action
from billing.pdf import render_credit_note_pdf, render_pdf
from billing.statements import month_closed
from kernel.instants import Month, to_micros
from metering import service as metering_service

router = APIRouter()


def _month(text: str | None, page: Page) -> Month:
    if text:
        try:
            return Month.parse(text)
        except ValueError:
            pass
    return Month.of(to_micros(page.now))


def recent_months(page: Page, count: int = 13) -> list[str]:
    month, months = Month.of(to_micros(page.now)), []
    for _ in range(count):
        months.append(str(month))
        month = previous_month(month)
    return months


@router.get("/statements")
def month_statements(
    page: PageDep,
    month: str | None = None,
    status: str | None = None,
    q: str | None = None,
    sort: str = "account",
    p: int = 1,
) -> Response:
    """Every account's statement of a month (finance and admin)."""
    require(page.principal, Action.READ_STATEMENTS, None)
    chosen = _month(month, page)
    status = status if status in listing.STATUSES else None
    sort = sort if sort.lstrip("-") in listing.SORTS else "account"
    result = listing.month_listing(page.db.connection(), chosen, status=status, search=q, sort=sort, page=p)

    def url(**changes: Any) -> str:
        params = {"month": str(chosen), "status": status or "", "q": q or "", "sort": sort, "p": result.page}
        params.update(changes)
        return f"{PREFIX}/statements?" + urlencode({k: v for k, v in params.items() if v not in ("", None)})

    return page.render(
        "statements.html",
        title=f"Statements · {chosen}",
        month=str(chosen),
        months=recent_months(page),
        status=status,
        q=q or "",
        sort=sort,
        listing=result,
        page_url=lambda n: url(p=n),
        sort_url=lambda key: url(sort=key, p=1),
        can_manage=page.may(Action.MANAGE_STATEMENTS, None),
    )


@router.get("/accounts/{account_id}/statements")
def account_statements(page: PageDep, account_id: str) -> Response:
    """One account's statements, newest first (superuser and billing of the account; finance, admin)."""
    require(page.principal, Action.READ_STATEMENTS, account_id)
    summaries = statements.list_statements(page.db, account_id, page.now)
    return page.render("account_statements.html", title="Statements", account_id=account_id, summaries=summaries)


@dataclass(frozen=True)
class Section:
    heading: str
    lines: list[dict[str, Any]]


def _sections(body: dict[str, Any]) -> list[Section]:
    """The statement's lines per service, then account-wide lines, then adjustments and prior periods."""
    per_service: dict[str, list[dict[str, Any]]] = {}
    account_wide, adjustments = [], []
    for line in body["lines"]:
        if line["kind"] == "adjustment":
            adjustments.append(line)
        elif line["service_id"]:
            per_service.setdefault(line["service_id"], []).append(line)
        else:
            account_wide.append(line)
    sections = [Section(f"Service {service}", lines) for service, lines in sorted(per_service.items())]
    if account_wide:
        sections.append(Section("Account-wide pricing", account_wide))
    if adjustments:
        sections.append(Section("Adjustments, credits and prior periods", adjustments))
    return sections


def _statement_page(
    page: Page,
    account_id: str,
    month: Month,
    service: str | None = None,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
    notice: str | None = None,
) -> Response:
    require(page.principal, Action.READ_STATEMENTS, account_id)
    body = credit_notes.annotated(page.db, statements.statement_body(page.db, account_id, month))
    rows = metering_service.daily_usage_on(page.db.connection(), account_id, month)
    service_ids = sorted({row.service_id for row in rows})
    service = service if service in service_ids else None
    closed = month_closed(month, page.now)
    manage = page.may(Action.MANAGE_STATEMENTS, account_id) and body["status"] != "finalized"
    return page.render(
        "statement.html",
        status_code=status_code,
        title=f"{account_id} · {month}",
        account_id=account_id,
        month=str(month),
        body=body,
        sections=_sections(body),
        charts=charts.charts(month, charts.daily_totals(rows, service)) if rows else [],
        service_ids=service_ids,
        service=service,
        can_manage=manage,
        can_regenerate=manage and closed,
        can_finalize=manage and closed and body["status"] == "draft",
        can_credit=page.may(Action.MANAGE_STATEMENTS, account_id)
        and body["status"] == "finalized"
        and to_decimal(body["remaining"]) > 0,
        line_options=[("", "Whole statement"), *_line_options(body)],
        closed=closed,
        errors=errors or {},
        values=values or {},
        notice=notice,
        base=f"{PREFIX}/accounts/{account_id}/statements/{month}",
    )


def _parse(month: str) -> Month:
    try:
        return Month.parse(month)
    except ValueError:
        from billing.domain.exceptions import NotFound

        raise NotFound("no such month") from None


@router.get("/accounts/{account_id}/statements/{month}")
def statement(
    page: PageDep, account_id: str, month: str, service: str | None = None, done: str | None = None
) -> Response:
    notices = {
        "regenerated": "The draft was rebuilt from current usage.",
        "adjusted": "The adjustment was added.",
        "finalized": "The statement is finalized. It will never change.",
        "credited": "The credit note was issued. The statement itself is unchanged.",
    }
    return _statement_page(page, account_id, _parse(month), service, notice=notices.get(done or ""))


@router.post("/accounts/{account_id}/statements/{month}/regenerate")
def regenerate(page: PageDep, account_id: str, month: str) -> Response:
    require(page.principal, Action.MANAGE_STATEMENTS, account_id)
    statements.regenerate(page.db, page.principal, account_id, _parse(month), page.now)
    return redirect(f"{PREFIX}/accounts/{account_id}/statements/{month}?done=regenerated")


def _numbering(page: Page) -> Numbering:
    """The statement numbers of this service's settings, the same the API's finalize uses."""
    numbering: Numbering = page.request.app.state.settings.numbering
    return numbering


@router.get("/accounts/{account_id}/statements/{month}/finalize")
def confirm_finalize(page: PageDep, account_id: str, month: str) -> Response:
    """The confirmation: what will be finalized, its total and the number it will take."""
    require(page.principal, Action.MANAGE_STATEMENTS, account_id)
    parsed = _parse(month)
    body = statements.statement_body(page.db, account_id, parsed)
    return page.render(
        "finalize.html",
        title=f"Finalize {account_id} · {month}",
        account_id=account_id,
        month=month,
        body=body,
        number=statements.next_number(page.db.connection(), _numbering(page), numbering_rules.STATEMENT, page.now),
        base=f"{PREFIX}/accounts/{account_id}/statements/{month}",
    )


@router.post("/accounts/{account_id}/statements/{month}/finalize")
def finalize(page: PageDep, account_id: str, month: str) -> Response:
    require(page.principal, Action.MANAGE_STATEMENTS, account_id)
    statements.finalize(page.db, page.principal, account_id, _parse(month), page.now, _numbering(page))
    return redirect(f"{PREFIX}/accounts/{account_id}/statements/{month}?done=finalized")


@router.post("/accounts/{account_id}/statements/{month}/adjustments")
def add_adjustment(page: PageDep, form: FormDep, account_id: str, month: str) -> Response:
    """Add an adjustment or a credit; a bad amount or a missing reason is shown beside its field."""
    require(page.principal, Action.MANAGE_STATEMENTS, account_id)
    parsed = _parse(month)
    kind, amount_text, reason = form.get("kind", "credit"), form.get("amount", "").strip(), form.get("reason", "")
    errors: dict[str, str] = {}
    amount = None
    try:
        amount = adjustment_amount(amount_text)
        if amount < 0:
            errors["amount"] = "Enter a positive amount; choose “Credit” to take it off the total."
    except BillingError as error:
        errors["amount"] = f"Enter an amount in dollars and cents, like 25.00 ({error})."
    if not reason.strip():
        errors["reason"] = "Say why: the reason is printed on the statement and kept in the audit log."
    if errors or amount is None:
        return _statement_page(page, account_id, parsed, errors=errors, values=form, status_code=400)
    signed = -amount if kind == "credit" else amount
    try:
        statements.add_adjustment(
            page.db,
            page.principal,
            account_id,
            parsed,
            amount=signed,
            reason=reason.strip(),
            service_id=None,
            now=page.now,
        )
    except BillingError as error:
        return _statement_page(page, account_id, parsed, errors={"amount": str(error)}, values=form, status_code=400)
    return redirect(f"{PREFIX}/accounts/{account_id}/statements/{month}?done=adjusted")


def _line_options(body: dict[str, Any]) -> list[tuple[str, str]]:
    """The statement lines a credit may name: those with something to credit, by position from 1."""
    lines = enumerate(body["lines"], start=1)
    return [(str(n), f"Line {n}: {line['description']}") for n, line in lines if to_decimal(line["amount"]) > 0]


@router.post("/accounts/{account_id}/statements/{month}/credit-notes")
def issue_credit_note(page: PageDep, form: FormDep, account_id: str, month: str) -> Response:
    """Issue a credit note against the finalized statement; a refused amount or no reason is shown beside its field."""
    require(page.principal, Action.MANAGE_STATEMENTS, account_id)
    parsed = _parse(month)
    line, text, reason = form.get("line", ""), form.get("credit_amount", "").strip(), form.get("credit_reason", "")
    errors: dict[str, str] = {}
    amount = None
    try:
        amount = to_decimal(text)
        if not has_places(amount, 2) or amount <= 0:
            raise InvalidAmount(text)
    except BillingError:
        errors["credit_amount"] = "Enter a positive amount in dollars and cents, like 25.00."
    if not reason.strip():
        errors["credit_reason"] = "Say why: the reason is printed on the credit note and kept in the audit log."
    if not errors and amount is not None:
        lines = ((int(line), amount),) if line.isdigit() else ()
        request = CreditRequest(reason.strip(), lines, None if lines else amount)
        try:
            credit_notes.issue(page.db, page.principal, account_id, parsed, request, page.now, _numbering(page))
            return redirect(f"{PREFIX}/accounts/{account_id}/statements/{month}?done=credited")
        except BillingError as error:
            errors["credit_amount"] = str(error)
    return _statement_page(page, account_id, parsed, errors=errors, values=form, status_code=400)


def _download(page: Page, account_id: str, month: str, media: str, make: Callable[[Any, Any], bytes | str]) -> Response:
    require(page.principal, Action.READ_STATEMENTS, account_id)
    statement_value = statements.statement_of(page.db, account_id, _parse(month))
    notes = credit_notes.notes_of(page.db, account_id, _parse(month))
    extension = media.split("/")[-1]
    headers = downloads.attachment(f"statement-{account_id}-{month}.{extension}")
    return Response(make(statement_value, notes), media_type=media, headers=headers)


def _csv(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv_safe.writer(buffer).writerows(rows)
    return buffer.getvalue()


@router.get("/accounts/{account_id}/statements/{month}/download.json")
def download_json(page: PageDep, account_id: str, month: str) -> Response:
    require(page.principal, Action.READ_STATEMENTS, account_id)
    body = credit_notes.statement_view(page.db, account_id, _parse(month))
    headers = downloads.attachment(f"statement-{account_id}-{month}.json")
    return Response(json.dumps(body, indent=2), media_type="application/json", headers=headers)


@router.get("/accounts/{account_id}/statements/{month}/download.csv")
def download_csv(page: PageDep, account_id: str, month: str) -> Response:
    return _download(page, account_id, month, "text/csv", lambda s, notes: _csv(statement_csv_rows(s, notes)))


@router.get("/accounts/{account_id}/statements/{month}/download.pdf")
def download_pdf(page: PageDep, account_id: str, month: str) -> Response:
    return _download(page, account_id, month, "application/pdf", render_pdf)


@router.get("/accounts/{account_id}/statements/{month}/credit-notes/{number}/download.{extension}")
def download_credit_note(page: PageDep, account_id: str, month: str, number: str, extension: str) -> Response:
    """A credit note as PDF, CSV or JSON, as the API gives it."""
    require(page.principal, Action.READ_STATEMENTS, account_id)
    body = credit_notes.note_body(page.db, account_id, _parse(month), number)
    note = credit_note_from_json(body)
    content: bytes | str
    if extension == "pdf":
        media, content = "application/pdf", render_credit_note_pdf(note)
    elif extension == "csv":
        media, content = "text/csv", _csv(note.to_csv_rows())
    elif extension == "json":
        media, content = "application/json", json.dumps(body, indent=2)
    else:
        raise NotFound("no such download")
    return Response(content, media_type=media, headers=downloads.attachment(f"credit-note-{number}.{extension}"))
