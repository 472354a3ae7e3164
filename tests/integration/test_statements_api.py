"""Rate cards, statements and the audit log through the admin API, on the real database.

Usage is written straight into the daily rollup here; tests/integration/test_statement_lifecycle.py
sends real events through a real worker.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from billing import statements
from billing.orm import AuditEntry, RateCardVersion, StatementRecord
from kernel.instants import Month
from metering import repository
from tests.admin_world import OTHER, OWN, World, build_world
from tests.stack import run_cli

MARCH, APRIL, MAY = "2026-03", "2026-04", "2026-05"


@pytest.fixture
def world(engine: Engine) -> Iterator[World]:
    world = build_world(engine)
    with world.client:
        yield world


def add_usage(engine: Engine, account: str, day: date, service: str = "svc-a", **values: int) -> None:
    """Add a day's usage through the rollup's own writer (it also moves the month's usage revision)."""
    row = {"connection_minutes": 0, "messages_published": 0, "messages_delivered": 0, "bytes_out": 0, **values}
    with engine.begin() as conn:
        repository.add_usage(conn, [{"account_id": account, "service_id": service, "day": day, **row}])


def card(name: str = "contract", minutes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "currency": "USD",
        "connection_minutes": minutes or [{"up_to": None, "unit_price": "1.000000"}],
        "messages": [{"up_to": None, "unit_price": "2.000000"}],
        "bandwidth": [{"up_to": None, "unit_price": "0.120000"}],
    }


def close_march(world: World) -> None:
    """Move the clock past March's end and its 72-hour grace period."""
    world.clock.now = datetime(2026, 4, 4, 1, 0, tzinfo=UTC)


def finance(world: World) -> dict[str, str]:
    return world.as_role("finance")


def test_the_current_months_statement_is_an_open_estimate_computed_on_read(world: World) -> None:
    add_usage(world.engine, OWN, date(2026, 3, 2), connection_minutes=2_500_000, messages_published=1_000_000)

    response = world.client.get(f"/v1/accounts/{OWN}/statements/{MARCH}", headers=world.as_role("billing"))

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["number"], body["content_hash"]) == ("open", None, None)
    assert [(line["kind"], line["amount"]) for line in body["lines"]] == [
        ("connection_minutes", "2.50"),
        ("messages", "2.00"),
    ]
    assert (body["subtotal"], body["total"]) == ("4.50", "4.50")
    assert set(body) == {
        "account_id", "month", "status", "currency", "lines", "subtotal", "total", "number", "content_hash",
        "credit_notes", "credited", "remaining",
    }  # fmt: skip
    with Session(world.engine) as session:
        assert session.scalars(select(StatementRecord)).all() == []


def test_regenerating_an_open_month_is_refused_with_409(world: World) -> None:
    response = world.client.post(f"/v1/accounts/{OWN}/statements/{MARCH}/regenerate", headers=finance(world))

    assert response.status_code == 409
    assert "has not ended" in response.json()["detail"]


def test_draft_regeneration_is_idempotent_and_picks_up_late_usage(world: World) -> None:
    add_usage(world.engine, OWN, date(2026, 3, 2), connection_minutes=1_000_000)
    close_march(world)
    url = f"/v1/accounts/{OWN}/statements/{MARCH}"

    first = world.client.post(f"{url}/regenerate", headers=finance(world))
    again = world.client.post(f"{url}/regenerate", headers=finance(world))

    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert first.json()["status"] == "draft"
    assert first.json()["total"] == "1.00"
    add_usage(world.engine, OWN, date(2026, 3, 30), connection_minutes=500_000)
    assert world.client.get(url, headers=finance(world)).json()["total"] == "1.00"  # a draft changes on regeneration
    assert world.client.post(f"{url}/regenerate", headers=finance(world)).json()["total"] == "1.50"


def test_finalizing_numbers_and_hashes_the_statement_and_any_change_after_is_409(world: World) -> None:
    add_usage(world.engine, OWN, date(2026, 3, 2), messages_delivered=3_000_000)
    close_march(world)
    url = f"/v1/accounts/{OWN}/statements/{MARCH}"
    world.client.post(f"{url}/regenerate", headers=finance(world))

    finalized = world.client.post(f"{url}/finalize", headers=finance(world))

    assert finalized.status_code == 200
    body = finalized.json()
    assert (body["status"], body["number"], body["total"]) == ("finalized", "FM-2026-000001", "6.00")
    assert len(body["content_hash"]) == 64
    assert world.client.get(url, headers=world.as_role("billing")).json() == body
    for path, payload in (
        ("/finalize", None),
        ("/regenerate", None),
        ("/adjustments", {"amount": "-1.00", "reason": "x"}),
    ):
        refused = world.client.post(f"{url}{path}", json=payload, headers=finance(world))
        assert refused.status_code == 409, path
        assert "FM-2026-000001" in refused.json()["detail"]
        assert "is finalized" in refused.json()["detail"]
    assert world.client.get(url, headers=finance(world)).json() == body


def test_numbers_follow_one_yearly_sequence_across_accounts_in_the_order_finalized(world: World) -> None:
    close_march(world)
    for account in (OWN, OTHER):
        world.client.post(f"/v1/accounts/{account}/statements/{MARCH}/regenerate", headers=finance(world))

    numbers = [
        world.client.post(f"/v1/accounts/{account}/statements/{MARCH}/finalize", headers=finance(world)).json()[
            "number"
        ]
        for account in (OTHER, OWN)
    ]

    assert numbers == ["FM-2026-000001", "FM-2026-000002"]


def test_finalizing_a_month_without_a_draft_is_409_saying_to_regenerate_first(world: World) -> None:
    close_march(world)

    response = world.client.post(f"/v1/accounts/{OWN}/statements/{MARCH}/finalize", headers=finance(world))

    assert response.status_code == 409
    assert "regenerate it first" in response.json()["detail"]


def test_adjustments_and_credits_become_lines_and_are_audited(world: World) -> None:
    add_usage(world.engine, OWN, date(2026, 3, 2), connection_minutes=10_000_000)
    close_march(world)
    url = f"/v1/accounts/{OWN}/statements/{MARCH}"
    world.client.post(f"{url}/regenerate", headers=finance(world))

    credit = world.client.post(
        f"{url}/adjustments", json={"amount": "-5.00", "reason": "Outage credit"}, headers=finance(world)
    )
    charge = world.client.post(
        f"{url}/adjustments",
        json={"amount": "1.25", "reason": "Support", "service_id": "svc-a"},
        headers=finance(world),
    )

    assert (credit.status_code, charge.status_code) == (201, 201)
    body = world.client.get(url, headers=finance(world)).json()
    adjustments = [line for line in body["lines"] if line["kind"] == "adjustment"]
    assert [(a["service_id"], a["amount"], a["description"]) for a in adjustments] == [
        (None, "-5.00", "Credit: Outage credit"),
        ("svc-a", "1.25", "Adjustment: Support"),
    ]
    assert (body["subtotal"], body["total"]) == ("10.00", "6.25")
    listed = world.client.get(f"{url}/adjustments", headers=world.as_role("billing")).json()
    assert [a["amount"] for a in listed] == ["-5.00", "1.25"]
    with Session(world.engine) as session:
        actions = session.scalars(select(AuditEntry.action).where(AuditEntry.account_id == OWN)).all()
    assert actions.count("statement.adjustment") == 2


@pytest.mark.parametrize(
    ("amount", "status"),
    [("1.005", 422), ("0", 400), ("0.00", 400), ("abc", 422)],
)
def test_an_adjustment_must_be_a_non_zero_amount_to_the_cent(world: World, amount: str, status: int) -> None:
    response = world.client.post(
        f"/v1/accounts/{OWN}/statements/{MARCH}/adjustments",
        json={"amount": amount, "reason": "x"},
        headers=finance(world),
    )

    assert response.status_code == status


def test_only_finance_changes_statements_and_other_accounts_statements_are_404(world: World) -> None:
    close_march(world)
    url = f"/v1/accounts/{OWN}/statements/{MARCH}"

    for role in ("admin", "superuser", "billing", "engineer", "user"):
        assert world.client.post(f"{url}/regenerate", headers=world.as_role(role)).status_code == 403, role
    assert world.client.get(url, headers=world.as_role("engineer")).status_code == 403
    assert world.client.get(url, headers=world.as_role("billing", OTHER)).status_code == 404
    assert world.client.get(url, headers=world.as_role("superuser")).status_code == 200
    assert world.client.get(url, headers=world.as_role("admin")).status_code == 200


def test_csv_and_pdf_downloads_carry_the_statement(world: World) -> None:
    add_usage(world.engine, OWN, date(2026, 3, 2), connection_minutes=1_234_567, bytes_out=2_000_000_000)
    close_march(world)
    url = f"/v1/accounts/{OWN}/statements/{MARCH}"
    world.client.post(f"{url}/regenerate", headers=finance(world))
    body = world.client.post(f"{url}/finalize", headers=finance(world)).json()

    rows = list(csv.reader(io.StringIO(world.client.get(f"{url}.csv", headers=world.as_role("billing")).text)))
    pdf = world.client.get(f"{url}.pdf", headers=world.as_role("billing"))

    assert rows[0] == ["service_id", "kind", "quantity", "unit", "unit_price", "amount", "description"]
    assert rows[-1][:6] == ["", "total", "", "", "", "1.47"]
    assert pdf.headers["content-type"] == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    for expected in (OWN, MARCH, "finalized", "FM-2026-000001", body["content_hash"], "1.23", "0.24", "1.47"):
        assert expected in text, expected
    assert "Compute is billed separately" in text


def test_the_default_card_changes_from_a_month_on_and_is_audited(world: World) -> None:
    cheaper = card("default-2026-04", [{"up_to": None, "unit_price": "0.500000"}])

    response = world.client.put(
        "/v1/rate-cards/default", json={"effective_month": APRIL, "card": cheaper}, headers=world.as_role("admin")
    )

    assert response.status_code == 200
    assert (response.json()["source"], response.json()["effective_month"]) == ("default", APRIL)
    march = world.client.get(f"/v1/rate-cards/default?month={MARCH}", headers=finance(world)).json()
    may = world.client.get(f"/v1/accounts/{OWN}/rate-card?month={MAY}", headers=world.as_role("billing")).json()
    assert (march["source"], march["card"]["name"]) == ("built-in", "default")
    assert (may["source"], may["card"]["name"]) == ("default", "default-2026-04")
    with Session(world.engine) as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "rate_card.set")).one()
    assert entry.before is not None and entry.after is not None
    assert (entry.before["source"], entry.after["card"]["name"]) == ("built-in", "default-2026-04")


def test_a_contract_override_prices_the_account_from_its_effective_month_only(world: World) -> None:
    graduated = [{"up_to": 1, "unit_price": "1.000000"}, {"up_to": None, "unit_price": "0.400000"}]
    world.clock.now = datetime(2026, 5, 10, tzinfo=UTC)
    for day in (date(2026, 3, 5), date(2026, 4, 5)):
        add_usage(world.engine, OWN, day, connection_minutes=3_000_000)
        add_usage(world.engine, OTHER, day, connection_minutes=3_000_000)

    put = world.client.put(
        f"/v1/accounts/{OWN}/rate-card",
        json={"effective_month": APRIL, "card": card(minutes=graduated)},
        headers=finance(world),
    )

    assert put.status_code == 200
    total = {
        (account, month): world.client.get(f"/v1/accounts/{account}/statements/{month}", headers=finance(world)).json()
        for account in (OWN, OTHER)
        for month in (MARCH, APRIL)
    }
    assert total[(OWN, MARCH)]["total"] == "3.00"
    assert total[(OWN, APRIL)]["total"] == "1.80"  # 1 x 1.00 + 2 x 0.40
    assert [line["description"].split(":")[0] for line in total[(OWN, APRIL)]["lines"]] == [
        "Connection time, all services, tier 1 (first 1 million minutes)",
        "Connection time, all services, tier 2 (over 1 million minutes)",
    ]
    assert total[(OTHER, APRIL)]["total"] == "3.00"
    with Session(world.engine) as session:
        assert len(session.scalars(select(RateCardVersion)).all()) == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"connection_minutes": [{"up_to": 5, "unit_price": "1"}]}, "connection_minutes: the last tier of a rate"),
        ({"messages": [{"up_to": 0, "unit_price": "1"}, {"up_to": None, "unit_price": "1"}]}, "must be positive"),
        (
            {
                "bandwidth": [
                    {"up_to": 9, "unit_price": "1"},
                    {"up_to": 3, "unit_price": "1"},
                    {"up_to": None, "unit_price": "1"},
                ]
            },
            "strictly increase",
        ),
        ({"currency": "usd"}, None),
    ],
)
def test_an_invalid_rate_card_is_refused_naming_the_problem(
    world: World, change: dict[str, Any], message: str | None
) -> None:
    response = world.client.put(
        f"/v1/accounts/{OWN}/rate-card",
        json={"effective_month": APRIL, "card": {**card(), **change}},
        headers=finance(world),
    )

    assert response.status_code in (400, 422)
    if message is not None:
        assert response.status_code == 400
        assert message in response.json()["detail"]


def test_a_rate_change_that_would_reprice_a_finalized_month_is_409(world: World) -> None:
    close_march(world)
    world.client.post(f"/v1/accounts/{OWN}/statements/{MARCH}/regenerate", headers=finance(world))
    world.client.post(f"/v1/accounts/{OWN}/statements/{MARCH}/finalize", headers=finance(world))

    response = world.client.put(
        f"/v1/accounts/{OWN}/rate-card", json={"effective_month": MARCH, "card": card()}, headers=finance(world)
    )

    assert response.status_code == 409
    assert "from 2026-04 at the earliest" in response.json()["detail"]


def test_rates_are_set_by_admin_and_finance_only(world: World) -> None:
    body = {"effective_month": APRIL, "card": card()}
    for role in ("superuser", "billing", "engineer", "user"):
        assert (
            world.client.put(f"/v1/accounts/{OWN}/rate-card", json=body, headers=world.as_role(role)).status_code == 403
        )
        assert world.client.get("/v1/rate-cards/default", headers=world.as_role(role)).status_code == 403
    assert (
        world.client.put(f"/v1/accounts/{OTHER}/rate-card", json=body, headers=world.as_role("superuser")).status_code
        == 404
    )


def test_the_statement_list_shows_the_open_month_then_stored_statements(world: World) -> None:
    close_march(world)
    world.client.post(f"/v1/accounts/{OWN}/statements/{MARCH}/regenerate", headers=finance(world))

    listed = world.client.get(f"/v1/accounts/{OWN}/statements", headers=world.as_role("billing")).json()

    assert [(s["month"], s["status"]) for s in listed] == [(APRIL, "open"), (MARCH, "draft")]


def test_the_audit_log_is_readable_per_the_role_table(world: World) -> None:
    close_march(world)
    world.client.post(f"/v1/accounts/{OWN}/statements/{MARCH}/regenerate", headers=finance(world))
    world.clock.advance(timedelta(hours=1))
    world.client.post(f"/v1/accounts/{OWN}/statements/{MARCH}/finalize", headers=finance(world))

    own = world.client.get(f"/v1/accounts/{OWN}/audit", headers=world.as_role("superuser"))
    platform = world.client.get(f"/v1/audit?account_id={OWN}", headers=world.as_role("admin"))

    assert own.status_code == platform.status_code == 200
    assert [e["action"] for e in own.json()][:2] == ["statement.finalize", "statement.draft"]
    finalize_entry = own.json()[0]
    assert finalize_entry["before"]["status"] == "draft"
    assert finalize_entry["after"]["number"] == "FM-2026-000001"
    assert finalize_entry["actor"] == world.user_ids["finance"]
    assert own.json() == platform.json()
    assert world.client.get("/v1/audit", headers=world.as_role("superuser")).status_code == 403
    assert world.client.get(f"/v1/accounts/{OTHER}/audit", headers=world.as_role("superuser")).status_code == 404
    assert world.client.get(f"/v1/accounts/{OWN}/audit", headers=world.as_role("billing")).status_code == 403


def test_late_usage_of_a_finalized_month_lands_once_as_a_prior_period_line_and_the_finalized_body_stays(
    world: World,
) -> None:
    add_usage(world.engine, OWN, date(2026, 3, 2), connection_minutes=1_000_000)
    close_march(world)
    march, april, may = (f"/v1/accounts/{OWN}/statements/{m}" for m in (MARCH, APRIL, MAY))
    world.client.post(f"{march}/regenerate", headers=finance(world))
    finalized = world.client.post(f"{march}/finalize", headers=finance(world)).json()

    add_usage(world.engine, OWN, date(2026, 3, 31), service="svc-b", connection_minutes=2_000_000, bytes_out=10**9)
    add_usage(world.engine, OWN, date(2026, 4, 2), connection_minutes=1_000_000)

    assert world.client.get(march, headers=finance(world)).json() == finalized
    estimate = world.client.get(april, headers=finance(world)).json()
    prior = [line for line in estimate["lines"] if line["kind"] == "adjustment"]
    assert [(p["amount"], p["description"]) for p in prior] == [
        (
            "2.12",
            "Prior-period adjustment for 2026-03: +2,000,000 minutes, +0 messages, +1,000,000,000 bytes (2.12 USD)",
        )
    ]
    assert (estimate["status"], estimate["subtotal"], estimate["total"]) == ("open", "1.00", "3.12")

    world.clock.now = datetime(2026, 5, 4, 1, tzinfo=UTC)
    world.client.post(f"{april}/regenerate", headers=finance(world))
    april_final = world.client.post(f"{april}/finalize", headers=finance(world)).json()
    assert april_final["total"] == "3.12"
    assert world.client.get(may, headers=finance(world)).json()["lines"] == []  # landed exactly once

    add_usage(world.engine, OWN, date(2026, 3, 20), messages_published=500_000)  # later still
    may_lines = world.client.get(may, headers=finance(world)).json()["lines"]
    assert [(line["amount"], line["description"][:43]) for line in may_lines] == [
        ("1.00", "Prior-period adjustment for 2026-03: +0 min")
    ]
    assert world.client.get(march, headers=finance(world)).json() == finalized
    assert world.client.get(april, headers=finance(world)).json() == april_final


def test_the_statement_command_prints_the_stored_finalized_statement_and_writes_its_pdf(
    world: World, stack_env: dict[str, str], tmp_path: Path
) -> None:
    add_usage(world.engine, OWN, date(2026, 3, 2), connection_minutes=1_000_000)
    close_march(world)
    url = f"/v1/accounts/{OWN}/statements/{MARCH}"
    world.client.post(f"{url}/regenerate", headers=finance(world))
    finalized = world.client.post(f"{url}/finalize", headers=finance(world)).json()

    printed = run_cli(stack_env, "statement", OWN, MARCH, "--format", "json")
    written = run_cli(stack_env, "statement", OWN, MARCH, "--format", "pdf", "--output", str(tmp_path / "s.pdf"))

    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout) == finalized
    assert written.returncode == 0, written.stderr
    assert "finalized, total 1.00 USD" in written.stdout
    text = "".join(page.extract_text() for page in PdfReader(tmp_path / "s.pdf").pages)
    assert finalized["number"] in text and finalized["content_hash"] in text

    credit = {"reason": "goodwill", "amount": "0.40"}
    note = world.client.post(f"{url}/credit-notes", json=credit, headers=finance(world)).json()
    printed = run_cli(stack_env, "statement", OWN, MARCH, "--format", "json")
    rows = run_cli(stack_env, "statement", OWN, MARCH, "--format", "csv").stdout.splitlines()
    written = run_cli(stack_env, "statement", OWN, MARCH, "--format", "pdf", "--output", str(tmp_path / "s.pdf"))

    shown = json.loads(printed.stdout)
    assert shown == world.client.get(url, headers=finance(world)).json()
    assert [n["number"] for n in shown["credit_notes"]] == [note["number"]]
    assert (shown["remaining"], shown["content_hash"]) == ("0.60", finalized["content_hash"])
    assert rows[-1] == ",remaining,,,,0.60,Remaining in USD after credit notes"
    assert "credit notes: 1, remaining 0.60 USD" in written.stdout
    assert note["number"] in "".join(page.extract_text() for page in PdfReader(tmp_path / "s.pdf").pages)


def test_usage_arriving_after_the_draft_but_finalized_without_regeneration_lands_on_the_next_statement(
    world: World,
) -> None:
    add_usage(world.engine, OWN, date(2026, 3, 2), connection_minutes=1_000_000)
    close_march(world)
    march, april = (f"/v1/accounts/{OWN}/statements/{m}" for m in (MARCH, APRIL))
    draft = world.client.post(f"{march}/regenerate", headers=finance(world)).json()
    add_usage(world.engine, OWN, date(2026, 3, 3), connection_minutes=4_000_000)  # after the draft was built

    finalized = world.client.post(f"{march}/finalize", headers=finance(world)).json()

    assert {**finalized, "status": "draft", "number": None, "content_hash": None} == draft  # what was reviewed
    lines = world.client.get(april, headers=finance(world)).json()["lines"]
    assert [(line["amount"], line["description"][:47]) for line in lines] == [
        ("4.00", "Prior-period adjustment for 2026-03: +4,000,000")
    ]


def test_the_beat_builds_only_missing_drafts_and_leaves_a_draft_under_review_alone(world: World) -> None:
    add_usage(world.engine, OWN, date(2026, 3, 2), connection_minutes=1_000_000)
    close_march(world)
    url = f"/v1/accounts/{OWN}/statements/{MARCH}"
    reviewed = world.client.post(f"{url}/regenerate", headers=finance(world)).json()
    add_usage(world.engine, OWN, date(2026, 3, 3), connection_minutes=1_000_000)

    run = statements.build_due_drafts(world.engine, world.clock.now, 72)
    again = statements.build_due_drafts(world.engine, world.clock.now, 72)

    assert (run.month, run.created, run.updated) == (Month(2026, 3), 1, 0)
    assert (again.created, again.updated) == (0, 0)
    assert world.client.get(url, headers=finance(world)).json() == reviewed
    assert (
        world.client.get(f"/v1/accounts/{OTHER}/statements/{MARCH}", headers=finance(world)).json()["status"] == "draft"
    )
