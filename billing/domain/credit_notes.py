"""Credit notes: the one way to correct a finalized statement (DESIGN.md "After finalization").

Rules, applied by ``credit_lines``; docs/decisions.md ("After finalization") gives the reasons:

- **Against a finalized statement only.** A draft or an open month takes an adjustment instead
  (``Conflict``, 409). The statement itself never changes: its body and content hash stay as
  finalized, and the credit notes are shown beside it.
- **A reason and lines.** Either an amount per statement line (``line`` is the line's position in
  the statement's ``lines``, from 1) or one whole-statement amount; never both, never neither.
- **Amounts** are positive, to the cent (2 decimals at most; written with exactly 2).
- **Never more than remains.** What remains of a statement is its total less every credit note
  issued against it. A credit note's total may not exceed it; a line's amount may not exceed
  what remains of that line (its amount less earlier credits on it). Example: a statement of
  10.00 with lines 6.00 and 4.00 and a credit note of 5.00 on the whole statement leaves 5.00;
  then 4.00 on line 2 is accepted (line 2 had 4.00 left), and 1.50 more on line 2 is refused.
- **Immutable.** A credit note is issued once with its own number (``CN-2026-000007``) and
  content hash (SHA-256 of its canonical JSON, as a statement's) and is never changed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billing.domain.exceptions import Conflict, InvalidCreditNote
from billing.domain.ledger import FINALIZED, NOT_HASHED, content_hash
from billing.domain.money import ZERO, exact_difference, exact_sum, format_amount, has_places, to_decimal
from billing.domain.statements import Statement, StatementLine
from kernel.instants import Month

WHOLE_STATEMENT = "statement"  # the kind of a whole-statement credit line
CSV_HEADER = ("credit_note", "statement", "line", "service_id", "kind", "amount", "description")
SUMMARY_KEYS = NOT_HASHED  # what a statement's JSON gains: its credit notes, credited, remaining


@dataclass(frozen=True, slots=True)
class CreditRequest:
    """What finance asks for: a reason and either amounts per statement line or one whole amount."""

    reason: str
    lines: tuple[tuple[int, Decimal], ...] = ()  # (line position from 1, amount)
    amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class CreditLine:
    """One credited amount: on one statement line (``line`` from 1), or on the whole statement."""

    line: int | None
    service_id: str | None
    kind: str
    description: str
    amount: Decimal

    def to_json(self) -> dict[str, Any]:
        """The line as JSON, its amount a string with 2 decimals."""
        return {
            "line": self.line,
            "service_id": self.service_id,
            "kind": self.kind,
            "description": self.description,
            "amount": format_amount(self.amount),
        }


@dataclass(frozen=True, slots=True)
class CreditNote:
    """A credit note as issued: what it credits, on which statement, by whom, and when."""

    number: str
    account_id: str
    month: Month
    statement_number: str
    statement_content_hash: str
    currency: str
    reason: str
    lines: tuple[CreditLine, ...]
    issued_at: datetime
    issued_by: str

    @property
    def total(self) -> Decimal:
        """The sum of the credited amounts (positive: what it takes off the statement)."""
        return exact_sum(line.amount for line in self.lines)

    def to_json(self) -> dict[str, Any]:
        """The credit note JSON, with its content hash (SHA-256 of the rest, as a statement's)."""
        body = {
            "number": self.number,
            "account_id": self.account_id,
            "month": str(self.month),
            "statement_number": self.statement_number,
            "statement_content_hash": self.statement_content_hash,
            "currency": self.currency,
            "reason": self.reason,
            "lines": [line.to_json() for line in self.lines],
            "total": format_amount(self.total),
            "issued_at": _rfc3339(self.issued_at),
            "issued_by": self.issued_by,
            "content_hash": None,
        }
        return {**body, "content_hash": content_hash(body)}

    def summary(self) -> dict[str, Any]:
        """What a statement's JSON shows of this credit note."""
        return {
            "number": self.number,
            "issued_at": _rfc3339(self.issued_at),
            "reason": self.reason,
            "total": format_amount(self.total),
        }

    def to_csv_rows(self) -> list[list[str]]:
        """The credit note as CSV rows: header, one row per line, then the total row."""
        rows = [list(CSV_HEADER)]
        for line in self.lines:
            kind_and_amount = [line.service_id or "", line.kind, format_amount(line.amount), line.description]
            rows.append(
                [self.number, self.statement_number, "" if line.line is None else str(line.line), *kind_and_amount]
            )
        rows.append(
            [
                self.number,
                self.statement_number,
                "",
                "",
                "total",
                format_amount(self.total),
                f"Total credited in {self.currency}: {self.reason}",
            ]
        )
        return rows


def credited(notes: Iterable[CreditNote]) -> Decimal:
    """The total of credit notes: ``credited([5.00, 1.25]) == 6.25``."""
    return exact_sum(note.total for note in notes)


def remaining(statement: Statement, notes: Iterable[CreditNote]) -> Decimal:
    """What remains of a statement after its credit notes: its total less what they credited."""
    return exact_difference(statement.total, credited(notes))


def credit_lines(statement: Statement, earlier: Sequence[CreditNote], request: CreditRequest) -> tuple[CreditLine, ...]:
    """The lines of a new credit note against ``statement``, or the rule it breaks (module docstring)."""
    if statement.status != FINALIZED:
        raise Conflict(
            f"the statement of {statement.account_id} for {statement.month} is {statement.status}, not finalized: "
            "a credit note corrects a finalized statement; a month not finalized takes an adjustment"
        )
    if not request.reason.strip():
        raise InvalidCreditNote("a credit note needs a reason")
    if (request.amount is None) == (not request.lines):
        raise InvalidCreditNote("give either lines (an amount per statement line) or one whole-statement amount")
    lines: tuple[CreditLine, ...]
    if request.amount is not None:
        lines = (_whole_line(statement, request.amount),)
    else:
        lines = tuple(_line_credit(statement, earlier, position, amount) for position, amount in _unique(request.lines))
    total = exact_sum(line.amount for line in lines)
    left = remaining(statement, earlier)
    if total > left:
        raise InvalidCreditNote(
            f"{format_amount(total)} {statement.currency} is more than remains of statement {statement.number}: "
            f"{format_amount(max(left, ZERO))} {statement.currency} (total {format_amount(statement.total)}, "
            f"credited {format_amount(credited(earlier))})"
        )
    return lines


def _unique(lines: Sequence[tuple[int, Decimal]]) -> Sequence[tuple[int, Decimal]]:
    twice = sorted(position for position, count in Counter(position for position, _ in lines).items() if count > 1)
    if twice:
        raise InvalidCreditNote(f"statement line {twice[0]} is named twice; give each line once")
    return lines


def _check_amount(amount: Decimal) -> Decimal:
    if not has_places(amount, 2):
        raise InvalidCreditNote(f"a credit is to the cent (2 decimals at most), got {amount}")
    if amount <= ZERO:
        raise InvalidCreditNote(f"a credited amount is positive (what is taken off the statement), got {amount}")
    return amount


def _whole_line(statement: Statement, amount: Decimal) -> CreditLine:
    return CreditLine(None, None, WHOLE_STATEMENT, f"Whole statement {statement.number}", _check_amount(amount))


def _line_credit(statement: Statement, earlier: Sequence[CreditNote], position: int, amount: Decimal) -> CreditLine:
    if not 1 <= position <= len(statement.lines):
        raise InvalidCreditNote(f"statement {statement.number} has lines 1 to {len(statement.lines)}, not {position}")
    line: StatementLine = statement.lines[position - 1]
    left = exact_difference(line.amount, exact_sum(c.amount for n in earlier for c in n.lines if c.line == position))
    if _check_amount(amount) > left:
        raise InvalidCreditNote(
            f"{format_amount(amount)} is more than remains of line {position} ({line.description}): "
            f"{format_amount(max(left, ZERO))} {statement.currency}"
        )
    return CreditLine(position, line.service_id, line.kind, line.description, amount)


def with_credit_notes(body: Mapping[str, Any], notes: Sequence[CreditNote]) -> dict[str, Any]:
    """A statement's JSON with its credit notes, what they credited and what remains.

    The statement's own keys are unchanged, so its content hash still checks out
    (``ledger.content_hash`` leaves these keys out). Example: a total of 10.00 and one credit
    note of 2.50 give ``credited`` "2.50" and ``remaining`` "7.50".
    """
    total = to_decimal(body["total"])
    spent = credited(notes)
    return {
        **body,
        "credit_notes": [note.summary() for note in notes],
        "credited": format_amount(spent),
        "remaining": format_amount(exact_difference(total, spent)),
    }


def statement_csv_rows(statement: Statement, notes: Sequence[CreditNote]) -> list[list[str]]:
    """A statement's CSV rows, then (when it has credit notes) one row per credit note, credited and remaining.

    A credit note's row and the credited row carry negative amounts: what they take off the total.
    """
    rows = statement.to_csv_rows()
    if not notes:
        return rows
    for note in notes:
        issued = note.issued_at.astimezone(UTC).date().isoformat()
        amount = format_amount(-note.total)
        rows.append(["", "credit_note", "", "", "", amount, f"Credit note {note.number} ({issued}): {note.reason}"])
    rows.append(
        [
            "",
            "credited",
            "",
            "",
            "",
            format_amount(-credited(notes)),
            f"Credited by {len(notes)} credit note{'' if len(notes) == 1 else 's'}",
        ]
    )
    left = format_amount(remaining(statement, notes))
    rows.append(["", "remaining", "", "", "", left, f"Remaining in {statement.currency} after credit notes"])
    return rows


def credit_note_from_json(body: Mapping[str, Any]) -> CreditNote:
    """Read a stored credit note body (``CreditNote.to_json``) back into a ``CreditNote``."""
    lines = tuple(
        CreditLine(line["line"], line["service_id"], line["kind"], line["description"], to_decimal(line["amount"]))
        for line in body["lines"]
    )
    return CreditNote(
        body["number"],
        body["account_id"],
        Month.parse(body["month"]),
        body["statement_number"],
        body["statement_content_hash"],
        body["currency"],
        body["reason"],
        lines,
        datetime.fromisoformat(body["issued_at"]),
        body["issued_by"],
    )


def _rfc3339(instant: datetime) -> str:
    """``2026-04-10T12:00:00Z``: UTC, microseconds only when there are some."""
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")
