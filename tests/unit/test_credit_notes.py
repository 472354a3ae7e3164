"""Credit notes: what may be credited, against what, and how a credit note is written."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing.domain import credit_notes as cn
from billing.domain import ledger
from billing.domain.exceptions import Conflict, InvalidCreditNote
from billing.domain.statements import Statement, StatementLine
from kernel.instants import Month

MAR = Month(2026, 3)
ISSUED = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)


def line(amount: str, service: str | None = "svc-a", kind: str = "messages") -> StatementLine:
    return StatementLine(service, kind, Decimal(1), "message", Decimal(0), Decimal(amount), f"{kind} of {service}")


def statement(*amounts: str, status: str = "finalized") -> Statement:
    lines = tuple(line(a, f"svc-{i}") for i, a in enumerate(amounts, start=1))
    number = "FM-2026-000001" if status == "finalized" else None
    return Statement("acc", MAR, status, "USD", lines, number=number, content_hash="h" * 64 if number else None)


def issue(s: Statement, earlier: list[cn.CreditNote], request: cn.CreditRequest, n: int = 1) -> cn.CreditNote:
    lines = cn.credit_lines(s, earlier, request)
    return cn.CreditNote(
        f"CN-2026-{n:06d}", "acc", MAR, "FM-2026-000001", "h" * 64, "USD", request.reason, lines, ISSUED, "usr_f"
    )


def whole(amount: str, reason: str = "goodwill") -> cn.CreditRequest:
    return cn.CreditRequest(reason, amount=Decimal(amount))


def per_line(*pairs: tuple[int, str]) -> cn.CreditRequest:
    return cn.CreditRequest("wrong rate", tuple((n, Decimal(a)) for n, a in pairs))


def test_the_worked_example_whole_then_per_line_then_refused() -> None:
    s = statement("6.00", "4.00")
    first = issue(s, [], whole("5.00"))
    second = issue(s, [first], per_line((2, "4.00")), 2)

    assert (cn.credited([first, second]), cn.remaining(s, [first, second])) == (Decimal("9.00"), Decimal("1.00"))
    with pytest.raises(InvalidCreditNote, match="more than remains of line 2"):
        cn.credit_lines(s, [first, second], per_line((2, "1.50")))


def test_no_credit_note_may_take_more_than_remains_of_the_statement() -> None:
    s = statement("6.00", "4.00")
    first = issue(s, [], per_line((1, "6.00"), (2, "3.00")))

    with pytest.raises(InvalidCreditNote, match=r"1\.01 USD is more than remains of statement FM-2026-000001: 1\.00"):
        cn.credit_lines(s, [first], whole("1.01"))
    assert cn.credit_lines(s, [first], whole("1.00"))[0].amount == Decimal("1.00")


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (whole("0.00"), "positive"),
        (whole("-1.00"), "positive"),
        (whole("1.005"), "to the cent"),
        (whole("1.00", reason="  "), "needs a reason"),
        (cn.CreditRequest("r"), "either lines"),
        (cn.CreditRequest("r", ((1, Decimal(1)),), Decimal(1)), "either lines"),
        (per_line((3, "1.00")), "lines 1 to 2, not 3"),
        (per_line((0, "1.00")), "not 0"),
        (per_line((1, "1.00"), (1, "2.00")), "line 1 is named twice"),
    ],
)
def test_a_credit_note_the_rules_refuse_says_why(request_: cn.CreditRequest, reason: str) -> None:
    with pytest.raises(InvalidCreditNote, match=reason):
        cn.credit_lines(statement("6.00", "4.00"), [], request_)


@pytest.mark.parametrize("status", ["open", "draft"])
def test_only_a_finalized_statement_takes_a_credit_note(status: str) -> None:
    with pytest.raises(Conflict, match="not finalized"):
        cn.credit_lines(statement("6.00", status=status), [], whole("1.00"))


def test_a_statement_with_nothing_to_pay_takes_no_credit() -> None:
    with pytest.raises(InvalidCreditNote, match="remains of statement FM-2026-000001: 0.00"):
        cn.credit_lines(statement("0.00"), [], whole("0.01"))


def test_a_credit_note_json_carries_its_lines_and_a_content_hash_that_checks_out() -> None:
    s = statement("6.00", "4.00")
    note = issue(s, [], per_line((2, "1.5")))
    body = note.to_json()

    assert body["lines"] == [
        {"line": 2, "service_id": "svc-2", "kind": "messages", "description": "messages of svc-2", "amount": "1.50"}
    ]
    assert (body["total"], body["issued_at"], body["statement_number"]) == (
        "1.50",
        "2026-04-10T12:00:00Z",
        "FM-2026-000001",
    )
    assert body["content_hash"] == ledger.content_hash(body)
    assert cn.credit_note_from_json(body) == note
    assert note.summary() == {
        "number": "CN-2026-000001",
        "issued_at": "2026-04-10T12:00:00Z",
        "reason": "wrong rate",
        "total": "1.50",
    }


def test_a_credit_note_csv_has_a_row_per_line_and_a_total() -> None:
    note = issue(statement("6.00"), [], whole("2.00"))

    assert note.to_csv_rows() == [
        list(cn.CSV_HEADER),
        ["CN-2026-000001", "FM-2026-000001", "", "", "statement", "2.00", "Whole statement FM-2026-000001"],
        ["CN-2026-000001", "FM-2026-000001", "", "", "total", "2.00", "Total credited in USD: goodwill"],
    ]


def test_a_statement_shows_its_credit_notes_beside_a_body_whose_hash_is_unchanged() -> None:
    s = statement("6.00", "4.00")
    body = ledger.finalized_body(s.to_json(), "FM-2026-000001")
    notes = [issue(s, [], whole("2.50"))]

    shown = cn.with_credit_notes(body, notes)

    assert (shown["credited"], shown["remaining"]) == ("2.50", "7.50")
    assert shown["credit_notes"] == [notes[0].summary()]
    assert ledger.content_hash(shown) == body["content_hash"]
    assert cn.with_credit_notes(body, [])["remaining"] == "10.00"


def test_a_statement_csv_ends_with_its_credit_notes_credited_and_remaining() -> None:
    s = statement("6.00", "4.00")
    notes = [issue(s, [], whole("2.50"))]

    rows = cn.statement_csv_rows(s, notes)

    assert rows[:-3] == s.to_csv_rows()
    assert rows[-3:] == [
        ["", "credit_note", "", "", "", "-2.50", "Credit note CN-2026-000001 (2026-04-10): goodwill"],
        ["", "credited", "", "", "", "-2.50", "Credited by 1 credit note"],
        ["", "remaining", "", "", "", "7.50", "Remaining in USD after credit notes"],
    ]
    assert cn.statement_csv_rows(s, []) == s.to_csv_rows()
