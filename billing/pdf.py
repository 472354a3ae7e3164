"""Statements as PDF, rendered with reportlab: a document a finance team can send as it is.

The page has a header (account, month, status, number, content hash, currency), a table of
the lines, the subtotal and total, and the notes (Compute billed separately; open estimates
say so). Output is byte-for-byte reproducible (reportlab's invariant mode), so the same
statement always gives the same file.
"""

from __future__ import annotations

import io
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from billing.domain.money import format_amount, format_unit_price
from billing.domain.statements import Statement

_HEADINGS = ("Service", "Kind", "Quantity", "Unit", "Unit price", "Amount", "Description")
_WIDTHS = (22 * mm, 22 * mm, 24 * mm, 14 * mm, 18 * mm, 18 * mm, 68 * mm)  # 186 mm: A4 less margins


def render_pdf(statement: Statement) -> bytes:
    """Render a statement as a one-or-more-page A4 PDF."""
    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=7.5, leading=9)
    buffer = io.BytesIO()
    title = f"fanmeter statement {statement.account_id} {statement.month}"
    document = SimpleDocTemplate(
        buffer, pagesize=A4, title=title, author="fanmeter", leftMargin=12 * mm, rightMargin=12 * mm, invariant=True
    )
    story = [
        Paragraph("fanmeter — Fanout usage statement", styles["Title"]),
        _header(statement),
        Spacer(1, 6 * mm),
        _lines(statement, small),
        Spacer(1, 6 * mm),
        *(Paragraph(escape(note), styles["Italic"]) for note in statement.notes),
    ]
    document.build(story)
    return buffer.getvalue()


def _header(statement: Statement) -> Table:
    rows = [
        ("Account", statement.account_id),
        ("Billing month (UTC)", str(statement.month)),
        ("Status", statement.status),
        ("Statement number", statement.number or "not finalized"),
        ("Content hash (SHA-256)", statement.content_hash or "not finalized"),
        ("Currency", statement.currency),
    ]
    table = Table(rows, colWidths=(45 * mm, 141 * mm), hAlign="LEFT")
    table.setStyle(TableStyle([("FONTNAME", (0, 0), (0, -1), "Helvetica-Bold"), ("FONTSIZE", (0, 0), (-1, -1), 8)]))
    return table


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
