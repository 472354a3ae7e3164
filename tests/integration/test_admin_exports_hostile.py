"""Exports a hostile value cannot turn into a formula or a broken header (findings 9 and 10), and adjustments
only for the account's services."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal
from urllib.parse import quote

import pytest
from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session

from billing import accounts, statements
from billing.domain.exceptions import NotFound
from billing.domain.roles import Principal
from kernel.instants import Month
from metering.orm import UsageDaily
from tests.admin_world import OTHER, OWN, SEEDER, World
from tests.integration.admin_setup import served_world  # noqa: F401  (the world fixture)

MARCH = "2026-03"
FORMULA = '=HYPERLINK("http://evil.example","click")'


def add_usage(engine: Engine, account: str, service: str) -> None:
    row = {"connection_minutes": 1_000_000, "messages_published": 0, "messages_delivered": 0, "bytes_out": 0}
    with engine.begin() as conn:
        conn.execute(
            insert(UsageDaily), [{"account_id": account, "service_id": service, "day": date(2026, 3, 2), **row}]
        )


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_usage_csv_neutralises_a_service_id_that_is_a_formula(world: World) -> None:
    add_usage(world.engine, OWN, FORMULA)  # service ids come from events: anything a producer wrote

    response = world.client.get(f"/v1/accounts/{OWN}/usage.csv?month={MARCH}", headers=world.as_role("billing"))

    assert response.status_code == 200
    assert rows(response.text)[1][1] == "'" + FORMULA
    quoted = FORMULA.replace('"', '""')
    assert f'"\'{quoted}"' in response.text


def test_statement_csv_neutralises_an_adjustment_reason_and_keeps_credits_numeric(world: World) -> None:
    add_usage(world.engine, OWN, "svc-a")
    url = f"/v1/accounts/{OWN}/statements/{MARCH}"
    added = world.client.post(
        f"{url}/adjustments",
        json={"amount": "-5.00", "reason": "@SUM(1+1)*cmd|' /C calc'!A0"},
        headers=world.as_role("finance"),
    )
    assert added.status_code == 201, added.text

    lines = rows(world.client.get(f"{url}.csv", headers=world.as_role("billing")).text)

    credit = next(line for line in lines if line[1] == "adjustment")
    assert credit[5] == "-5.00"
    assert not any(value.startswith(("=", "+", "@", "\t", "\r")) for line in lines for value in line)
    assert not any(
        value.startswith("-") and not value[1:].replace(".", "").isdigit() for line in lines for value in line
    )


@pytest.mark.parametrize("service_id", ["svc_nowhere", "=1+1"])
def test_an_adjustment_for_a_service_the_account_does_not_have_is_404(world: World, service_id: str) -> None:
    response = world.client.post(
        f"/v1/accounts/{OWN}/statements/{MARCH}/adjustments",
        json={"amount": "1.00", "reason": "x", "service_id": service_id},
        headers=world.as_role("finance"),
    )

    assert response.status_code == 404
    assert response.json() == {
        "detail": f"account {OWN} has no service {service_id!r} (none configured, none billed in {MARCH})"
    }


def test_an_adjustment_for_another_accounts_configured_service_is_404_and_for_its_own_201(world: World) -> None:
    theirs = world.client.post(
        f"/v1/accounts/{OTHER}/services",
        json={"name": "s", "type": "compute"},
        headers=world.as_role("engineer", OTHER),
    ).json()["id"]
    ours = world.client.post(
        f"/v1/accounts/{OWN}/services", json={"name": "s", "type": "compute"}, headers=world.as_role("engineer")
    ).json()["id"]
    url = f"/v1/accounts/{OWN}/statements/{MARCH}/adjustments"

    refused = world.client.post(
        url, json={"amount": "1.00", "reason": "x", "service_id": theirs}, headers=world.as_role("finance")
    )
    accepted = world.client.post(
        url, json={"amount": "1.00", "reason": "x", "service_id": ours}, headers=world.as_role("finance")
    )

    assert (refused.status_code, accepted.status_code) == (404, 201)


@pytest.mark.parametrize("account_id", ['acc"; filename="evil.exe', "café-☃"])
def test_downloads_of_an_account_with_a_hostile_id_answer_200_with_an_encoded_name(
    world: World, account_id: str
) -> None:
    with Session(world.engine) as session:  # ids made before the API's pattern, or by other tools
        accounts.create_account(
            session, SEEDER, name="x", plan="paid", currency="USD", account_id=account_id, now=world.clock.now
        )
    base = f"/v1/accounts/{quote(account_id, safe='')}"
    admin = world.as_role("admin")

    for path in (f"{base}/usage.csv?month={MARCH}", f"{base}/statements/{MARCH}.csv", f"{base}/statements/{MARCH}.pdf"):
        response = world.client.get(path, headers=admin)
        assert response.status_code == 200, (path, response.text)
        disposition = response.headers["content-disposition"]
        assert disposition.count(";") == 2, disposition
        assert f"filename*=UTF-8''{quote('-' + account_id + '-', safe='')}" in disposition.replace("usage", "").replace(
            "statement", ""
        )


def test_the_service_check_is_the_services_so_every_caller_gets_it(world: World) -> None:
    """The console's form and the demo call ``statements.add_adjustment`` directly, not through the API."""
    finance = Principal(token_id="t", kind="user", role="finance", user_id="usr_f")
    with Session(world.engine) as session, pytest.raises(NotFound, match="has no service 'svc_nowhere'"):
        statements.add_adjustment(
            session, finance, OWN, Month.parse(MARCH), amount=Decimal("1.00"), reason="x",
            service_id="svc_nowhere", now=world.clock.now,
        )  # fmt: skip
    with Session(world.engine) as session:
        assert statements.adjustments_of(session, OWN, Month.parse(MARCH)) == []
