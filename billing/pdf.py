"""Statements and credit notes as PDF, rendered with reportlab: documents a finance team can send as they are.

A statement's page has a header (account, month, status, number, content hash, currency), a
table of the lines, the subtotal and total, its credit notes with what they credited and what
remains, and the notes (Compute billed separately; open estimates say so). A credit note's page
has its header (number, the statement it credits, issue date, reason), its lines and total.
Output is byte-for-byte reproducible (reportlab's invariant mode), so the same document always
gives the same file.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from billing.domain.credit_notes import CreditNote, credited, remaining
from billing.domain.money import format_amount, format_unit_price
from billing.domain.statements import Statement

_HEADINGS = ("Service", "Kind", "Quantity", "Unit", "Unit price", "Amount", "Description")
_WIDTHS = (22 * mm, 22 * mm, 22 * mm, 16 * mm, 18 * mm, 18 * mm, 68 * mm)  # 186 mm: A4 less margins


_NOTE_HEADINGS = ("Credit note", "Issued (UTC)", "Reason", "Amount")
_NOTE_WIDTHS = (32 * mm, 24 * mm, 106 * mm, 24 * mm)
_CREDIT_HEADINGS = ("Line", "Service", "Kind", "Description", "Amount")
_CREDIT_WIDTHS = (10 * mm, 40 * mm, 24 * mm, 88 * mm, 24 * mm)


def render_pdf(statement: Statement, credit_notes: Sequence[CreditNote] = ()) -> bytes:
    """Render a statement (and the credit notes issued against it) as a one-or-more-page A4 PDF."""
    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=7.5, leading=9)
    story = [
        Paragraph("fanmeter — Fanout usage statement", styles["Title"]),
        _header(statement),
        Spacer(1, 6 * mm),
        _lines(statement, small),
        Spacer(1, 6 * mm),
    ]
    if credit_notes:
        story += [Paragraph("Credit notes", styles["Heading3"]), _credit_notes(statement, credit_notes, small)]
        story.append(Spacer(1, 6 * mm))
    story += [Paragraph(escape(note), styles["Italic"]) for note in statement.notes]
    return _build(f"fanmeter statement {statement.account_id} {statement.month}", story)


def render_credit_note_pdf(note: CreditNote) -> bytes:
    """Render a credit note as a one-or-more-page A4 PDF."""
    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=7.5, leading=9)
    rows = [
        ("Credit note number", note.number),
        ("Account", note.account_id),
        ("Billing month (UTC)", str(note.month)),
        ("Credits statement", note.statement_number),
        ("Statement content hash", note.statement_content_hash),
        ("Issued (UTC)", note.issued_at.strftime("%Y-%m-%d %H:%M:%S")),
        ("Issued by", note.issued_by),
        ("Reason", Paragraph(escape(note.reason), small)),
        ("Content hash (SHA-256)", note.to_json()["content_hash"]),
        ("Currency", note.currency),
    ]
    story = [
        Paragraph("fanmeter — credit note", styles["Title"]),
        _key_values(rows),
        Spacer(1, 6 * mm),
        _credit_lines(note, small),
        Spacer(1, 6 * mm),
        Paragraph(
            escape(f"This credit note reduces what is due on statement {note.statement_number}; "
                   "the statement itself is unchanged."),
            styles["Italic"],
        ),
    ]  # fmt: skip
    return _build(f"fanmeter credit note {note.number}", story)


def _build(title: str, story: list[Flowable]) -> bytes:
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer, pagesize=A4, title=title, author="fanmeter", leftMargin=12 * mm, rightMargin=12 * mm, invariant=True
    )
    document.build(story)
    return buffer.getvalue()


def _key_values(rows: Sequence[tuple[str, object]]) -> Table:
    table = Table([list(row) for row in rows], colWidths=(45 * mm, 141 * mm), hAlign="LEFT")
    style = [("FONTNAME", (0, 0), (0, -1), "Helvetica-Bold"), ("FONTSIZE", (0, 0), (-1, -1), 8)]
    table.setStyle(TableStyle([*style, ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    return table


def _credit_notes(statement: Statement, notes: Sequence[CreditNote], style: object) -> Table:
    rows: list[list[object]] = [list(_NOTE_HEADINGS)]
    for note in notes:
        issued = note.issued_at.strftime("%Y-%m-%d")
        rows.append([note.number, issued, Paragraph(escape(note.reason), style), format_amount(-note.total)])
    rows.append(["", "", "Credited", format_amount(-credited(notes))])
    rows.append(["", "", "Remaining", f"{format_amount(remaining(statement, notes))} {statement.currency}"])
    return _table(rows, _NOTE_WIDTHS, amounts_from=3)


def _credit_lines(note: CreditNote, style: object) -> Table:
    rows: list[list[object]] = [list(_CREDIT_HEADINGS)]
    for line in note.lines:
        rows.append(
            [
                "all" if line.line is None else str(line.line),
                Paragraph(escape(line.service_id or "all"), style),
                Paragraph(line.kind.replace("_", " "), style),
                Paragraph(escape(line.description), style),
                format_amount(line.amount),
            ]
        )
    rows.append(["", "", "", "Total credited", f"{format_amount(note.total)} {note.currency}"])
    return _table(rows, _CREDIT_WIDTHS, amounts_from=4, totals=1)


def _table(rows: list[list[object]], widths: Sequence[float], amounts_from: int, totals: int = 2) -> Table:
    """A table with a bold heading row and bold total rows (the last ``totals``), amounts right-aligned."""
    table = Table(rows, colWidths=widths, repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONTSIZE", (0, 0), (-1, -1), 7.5),
                ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                ("FONTNAME", (0, -totals), (-1, -1), "Helvetica-Bold"),
                ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
                ("LINEABOVE", (0, -totals), (-1, -totals), 0.5, colors.black),
                ("ALIGN", (amounts_from, 1), (-1, -1), "RIGHT"),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    return table


def _header(statement: Statement) -> Table:
    return _key_values([
        ("Account", statement.account_id),
        ("Billing month (UTC)", str(statement.month)),
        ("Status", statement.status),
        ("Statement number", statement.number or "not finalized"),
        ("Content hash (SHA-256)", statement.content_hash or "not finalized"),
        ("Currency", statement.currency),
    ])  # fmt: skip


def _lines(statement: Statement, style: object) -> Table:
    rows: list[list[object]] = [list(_HEADINGS)]
    for line in statement.lines:
        rows.append(
            [
                Paragraph(escape(line.service_id or "all"), style),
                Paragraph(line.kind.replace("_", " "), style),
                format(line.quantity, ",f"),
                Paragraph(escape(line.unit), style),
                format_unit_price(line.unit_price),
                format_amount(line.amount),
                Paragraph(escape(line.description), style),
            ]
        )
    if not statement.lines:
        rows.append(["", "no usage this month", "", "", "", "0.00", ""])
    rows.append(["", "", "", "", "Subtotal", format_amount(statement.subtotal), ""])
    rows.append(["", "", "", "", "Total", f"{format_amount(statement.total)} {statement.currency}", ""])
    table = Table(rows, colWidths=_WIDTHS, repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONTSIZE", (0, 0), (-1, -1), 7.5),
                ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                ("FONTNAME", (4, -2), (5, -1), "Helvetica-Bold"),
                ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
                ("LINEABOVE", (0, -2), (-1, -2), 0.5, colors.black),
                ("ALIGN", (2, 1), (5, -1), "RIGHT"),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    return table
