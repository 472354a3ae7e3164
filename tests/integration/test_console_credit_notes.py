"""Credit notes in the console: finance issues one on a finalized statement's page, everyone who reads
the statement sees it and downloads it; the finalize confirmation shows the number finalizing takes."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import date

import pytest
from pypdf import PdfReader
from sqlalchemy import Engine, text

from billing.domain import ledger
from tests.admin_world import OWN, World, build_world
from tests.integration.test_console_pages import MONTH, form_token, sign_in
from tests.integration.test_statements_api import add_usage

BASE = f"/console/accounts/{OWN}/statements/{MONTH}"


@pytest.fixture
def world(engine: Engine) -> Iterator[World]:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM console_session"))
    world = build_world(engine)
    with world.client:
        yield world


def finalize_through_the_console(world: World) -> str:
    add_usage(world.engine, OWN, date(2026, 2, 2), messages_delivered=5_000_000)  # 10.00
    sign_in(world.client, world.tokens["finance"])
    token = form_token(world.client, BASE)
    world.client.post(f"{BASE}/regenerate", data={"csrf_token": token})
    confirmation = world.client.get(f"{BASE}/finalize").text
    promised = re.search(r"Finalize as ([A-Z0-9-]+)", confirmation)
    assert promised
    assert world.client.post(f"{BASE}/finalize", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    return token


def test_the_finalize_confirmation_shows_the_number_finalizing_takes(world: World) -> None:
    add_usage(world.engine, OWN, date(2026, 2, 2), messages_delivered=5_000_000)
    sign_in(world.client, world.tokens["finance"])
    token = form_token(world.client, BASE)
    world.client.post(f"{BASE}/regenerate", data={"csrf_token": token})

    promised = re.search(r"Finalize as ([A-Z0-9-]+)", world.client.get(f"{BASE}/finalize").text)
    world.client.post(f"{BASE}/finalize", data={"csrf_token": token})

    assert promised and promised.group(1) == "FM-2026-000001"
    assert "FM-2026-000001" in world.client.get(BASE).text


def test_finance_issues_a_credit_note_on_the_page_and_its_errors_are_beside_their_fields(world: World) -> None:
    token = finalize_through_the_console(world)
    page = world.client.get(BASE).text
    assert "Issue a credit note" in page and "Add an adjustment" not in page

    refused = world.client.post(
        f"{BASE}/credit-notes", data={"csrf_token": token, "line": "", "credit_amount": "10.01", "credit_reason": ""}
    )
    over = world.client.post(
        f"{BASE}/credit-notes", data={"csrf_token": token, "line": "1", "credit_amount": "10.01", "credit_reason": "x"}
    )
    issued = world.client.post(
        f"{BASE}/credit-notes",
        data={"csrf_token": token, "line": "1", "credit_amount": "2.50", "credit_reason": "Outage on the 3rd"},
        follow_redirects=False,
    )

    assert refused.status_code == 400 and 'id="f-credit_reason-error"' in refused.text
    assert over.status_code == 400 and "more than remains of line 1" in over.text
    assert issued.status_code == 303
    shown = world.client.get(issued.headers["location"]).text
    assert "The credit note was issued." in shown
    assert "CN-2026-000001" in shown and "Outage on the 3rd" in shown and "$7.50" in shown


def test_a_reader_of_the_statement_sees_and_downloads_the_credit_note_but_may_not_issue_one(world: World) -> None:
    token = finalize_through_the_console(world)
    world.client.post(f"{BASE}/credit-notes", data={"csrf_token": token, "line": "", "credit_amount": "1.00",
                                                     "credit_reason": "Goodwill"})  # fmt: skip
    sign_in(world.client, world.tokens["billing"])

    page = world.client.get(BASE).text
    pdf = world.client.get(f"{BASE}/credit-notes/CN-2026-000001/download.pdf")
    body = world.client.get(f"{BASE}/credit-notes/CN-2026-000001/download.json").json()
    statement = world.client.get(f"{BASE}/download.json").json()
    billing_token = form_token(world.client, BASE)
    refused = world.client.post(
        f"{BASE}/credit-notes", data={"csrf_token": billing_token, "credit_amount": "1.00", "credit_reason": "x"}
    )

    assert "CN-2026-000001" in page and "Issue a credit note" not in page
    assert "CN-2026-000001" in "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert body["content_hash"] == ledger.content_hash(body)
    assert (statement["remaining"], statement["content_hash"]) == ("9.00", ledger.content_hash(statement))
    assert refused.status_code == 403
    assert world.client.get(f"{BASE}/credit-notes/CN-2026-000001/download.exe").status_code == 404
