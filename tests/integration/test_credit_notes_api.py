"""Credit notes through the admin API, on the real database: issue, refuse, read, export, audit."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from pypdf import PdfReader
from sqlalchemy import Engine

from billing.domain import ledger
from billing.settings import BillingSettings
from tests.admin_world import OWN, World, build_world
from tests.integration.test_statements_api import add_usage

MARCH = "2026-03"
STATEMENT = f"/v1/accounts/{OWN}/statements/{MARCH}"
NOTES = f"{STATEMENT}/credit-notes"


@pytest.fixture
def world(engine: Engine) -> Iterator[World]:
    world = build_world(engine)
    with world.client:
        yield world


def finalized_march(world: World) -> dict[str, object]:
    """March finalized with 6.00 of messages on svc-a and 4.00 on svc-b (total 10.00)."""
    add_usage(world.engine, OWN, date(2026, 3, 2), "svc-a", messages_delivered=3_000_000)
    add_usage(world.engine, OWN, date(2026, 3, 2), "svc-b", messages_delivered=2_000_000)
    world.clock.now = datetime(2026, 4, 10, 9, 0, tzinfo=UTC)
    finance = world.as_role("finance")
    world.client.post(f"{STATEMENT}/regenerate", headers=finance)
    body: dict[str, object] = world.client.post(f"{STATEMENT}/finalize", headers=finance).json()
    assert body["total"] == "10.00"
    return body


def issue(world: World, payload: dict[str, object], role: str = "finance") -> tuple[int, dict[str, object]]:
    response = world.client.post(NOTES, json=payload, headers=world.as_role(role))
    return response.status_code, response.json()


def test_finance_issues_numbered_credit_notes_and_the_statement_shows_them_with_its_hash_unchanged(
    world: World,
) -> None:
    finalized = finalized_march(world)

    status, first = issue(world, {"reason": "outage on 2 March", "amount": "2.5"})
    world.clock.advance(timedelta(hours=1))
    status_2, second = issue(world, {"reason": "svc-b priced wrong", "lines": [{"line": 2, "amount": "1.25"}]})

    assert (status, status_2) == (201, 201)
    assert (first["number"], second["number"]) == ("CN-2026-000001", "CN-2026-000002")
    assert (first["total"], first["statement_number"], first["currency"]) == ("2.50", finalized["number"], "USD")
    assert second["lines"] == [
        {
            "line": 2,
            "service_id": "svc-b",
            "kind": "messages",
            "description": "Messages (published + delivered), service svc-b: 2,000,000 messages at 2.000000 USD "
            "per million messages",
            "amount": "1.25",
        }
    ]
    assert first["content_hash"] == ledger.content_hash(first)
    shown = world.client.get(STATEMENT, headers=world.as_role("billing")).json()
    assert [n["number"] for n in shown["credit_notes"]] == ["CN-2026-000001", "CN-2026-000002"]
    assert (shown["credited"], shown["remaining"]) == ("3.75", "6.25")
    assert shown["content_hash"] == finalized["content_hash"] == ledger.content_hash(shown)
    assert {k: shown[k] for k in finalized if k not in ledger.NOT_HASHED} == {
        k: v for k, v in finalized.items() if k not in ledger.NOT_HASHED
    }
    listed = world.client.get(NOTES, headers=world.as_role("superuser")).json()
    assert listed == [first, second]
    assert world.client.get(f"{NOTES}/CN-2026-000002", headers=world.as_role("billing")).json() == second


def test_more_than_remains_or_not_positive_is_422_with_the_reason_and_nothing_is_issued(world: World) -> None:
    finalized_march(world)
    issue(world, {"reason": "first", "amount": "9.00"})

    over = issue(world, {"reason": "too much", "amount": "1.01"})
    over_line = issue(world, {"reason": "too much", "lines": [{"line": 1, "amount": "6.01"}]})
    zero = issue(world, {"reason": "nothing", "amount": "0.00"})
    negative = issue(world, {"reason": "a charge", "amount": "-1.00"})
    cents = issue(world, {"reason": "fraction", "amount": "0.005"})

    assert over == (422, {"detail": "1.01 USD is more than remains of statement FM-2026-000001: 1.00 USD "
                                    "(total 10.00, credited 9.00)"})  # fmt: skip
    assert over_line[0] == 422 and "more than remains of line 1" in str(over_line[1]["detail"])
    for status, body in (zero, negative):
        assert status == 422 and "positive" in str(body["detail"])
    assert cents[0] == 422 and "to the cent" in str(cents[1]["detail"])
    assert [n["number"] for n in world.client.get(NOTES, headers=world.as_role("finance")).json()] == ["CN-2026-000001"]
    assert issue(world, {"reason": "the rest", "amount": "1.00"})[0] == 201  # refusals took no number
    assert world.client.get(STATEMENT, headers=world.as_role("finance")).json()["remaining"] == "0.00"


def test_a_statement_that_is_not_finalized_takes_no_credit_note_409(world: World) -> None:
    add_usage(world.engine, OWN, date(2026, 3, 2), messages_delivered=3_000_000)
    open_month = issue(world, {"reason": "r", "amount": "1.00"})
    world.clock.now = datetime(2026, 4, 10, tzinfo=UTC)
    world.client.post(f"{STATEMENT}/regenerate", headers=world.as_role("finance"))
    draft = issue(world, {"reason": "r", "amount": "1.00"})

    assert open_month[0] == draft[0] == 409
    assert "not finalized" in str(draft[1]["detail"]) and "adjustment" in str(draft[1]["detail"])
    assert issue(world, {"reason": "r", "amount": "1.00"}, role="billing")[0] == 403


def test_a_credit_note_is_exported_as_csv_and_pdf_and_the_statements_exports_show_it(world: World) -> None:
    finalize = finalized_march(world)
    _, note = issue(world, {"reason": "outage on 2 March", "lines": [{"line": 1, "amount": "2.00"}]})
    billing = world.as_role("billing")

    rows = list(csv.reader(io.StringIO(world.client.get(f"{NOTES}/CN-2026-000001.csv", headers=billing).text)))
    pdf = world.client.get(f"{NOTES}/CN-2026-000001.pdf", headers=billing)
    statement_rows = list(csv.reader(io.StringIO(world.client.get(f"{STATEMENT}.csv", headers=billing).text)))
    statement_pdf = world.client.get(f"{STATEMENT}.pdf", headers=billing)

    assert rows[-1] == [
        "CN-2026-000001",
        "FM-2026-000001",
        "",
        "",
        "total",
        "2.00",
        "Total credited in USD: outage on 2 March",
    ]
    assert rows[1][:6] == ["CN-2026-000001", "FM-2026-000001", "1", "svc-a", "messages", "2.00"]
    assert pdf.headers["content-type"] == "application/pdf"
    assert "credit-note-CN-2026-000001.pdf" in pdf.headers["content-disposition"]
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    for expected in (
        "CN-2026-000001",
        "FM-2026-000001",
        finalize["content_hash"],
        note["content_hash"],
        "2.00",
        "outage",
    ):
        assert str(expected) in text, expected
    assert statement_rows[-3][1:] == [
        "credit_note",
        "",
        "",
        "",
        "-2.00",
        "Credit note CN-2026-000001 (2026-04-10): outage on 2 March",
    ]
    assert statement_rows[-1][1] == "remaining" and statement_rows[-1][5] == "8.00"
    statement_text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(statement_pdf.content)).pages)
    assert "Credit notes" in statement_text and "CN-2026-000001" in statement_text and "8.00 USD" in statement_text


def test_issuing_is_audited_and_an_unknown_credit_note_is_404(world: World) -> None:
    finalized_march(world)
    _, note = issue(world, {"reason": "goodwill", "amount": "1.00"})

    entry = world.client.get(f"/v1/accounts/{OWN}/audit", headers=world.as_role("superuser")).json()[0]

    assert (entry["action"], entry["actor"], entry["before"]) == ("credit_note.issue", world.user_ids["finance"], None)
    assert entry["after"] == {
        "number": "CN-2026-000001", "statement_number": "FM-2026-000001", "total": "1.00", "reason": "goodwill",
        "content_hash": note["content_hash"],
    }  # fmt: skip
    assert world.client.get(f"{NOTES}/CN-2026-000009", headers=world.as_role("finance")).status_code == 404
    assert world.client.get(f"{NOTES}/CN-2026-000009.pdf", headers=world.as_role("finance")).status_code == 404


def test_the_credit_note_prefix_comes_from_the_settings(engine: Engine) -> None:
    world = build_world(engine, settings=BillingSettings(credit_note_number_prefix="CR", number_yearly_reset=False))
    with world.client:
        finalized_march(world)
        status, note = issue(world, {"reason": "r", "amount": "1.00"})

    assert (status, note["number"]) == (201, "CR-000001")


def test_late_usage_after_credit_notes_changes_neither_the_statement_nor_what_remains(world: World) -> None:
    finalized = finalized_march(world)
    issue(world, {"reason": "goodwill", "amount": "4.00"})
    before = world.client.get(STATEMENT, headers=world.as_role("finance")).json()

    add_usage(world.engine, OWN, date(2026, 3, 31), "svc-a", messages_delivered=1_000_000)  # late: +2.00

    after = world.client.get(STATEMENT, headers=world.as_role("finance")).json()
    april = world.client.get(f"/v1/accounts/{OWN}/statements/2026-04", headers=world.as_role("finance")).json()
    assert after == before and after["content_hash"] == finalized["content_hash"]
    assert (after["total"], after["remaining"]) == ("10.00", "6.00")
    assert [line["amount"] for line in april["lines"]] == ["2.00"]  # billed on the next statement
    assert issue(world, {"reason": "too much", "amount": "6.01"})[0] == 422
