"""Usage alert thresholds through the admin API: the role table on every route, own and other account, bad limits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from billing.domain.roles import ROLES
from billing.orm import AuditEntry
from tests.admin_world import OTHER, OWN, World, build_world

ALERTS = "/v1/accounts/{a}/usage-alerts"
MANAGERS = {"admin", "superuser"}  # Action.MANAGE_ALERTS
READERS = {"admin", "finance", "superuser", "engineer", "billing"}  # Action.READ_USAGE
MONEY_READERS = {"admin", "finance", "superuser", "billing"}  # Action.READ_STATEMENTS


# Every route of the usage alerts: who may call it (from the role table) and what success answers.
ROUTES: list[tuple[str, str, dict[str, str] | None, set[str], int]] = [
    ("GET", "/v1/accounts/{a}/usage-alerts", None, READERS, 200),
    ("POST", "/v1/accounts/{a}/usage-alerts", {"measure": "messages", "limit": "5"}, MANAGERS, 201),
    ("DELETE", "/v1/accounts/{a}/usage-alerts/{t}", None, MANAGERS, 204),
    ("GET", "/v1/accounts/{a}/usage-alerts/crossings", None, READERS, 200),
]


@pytest.fixture(scope="module")
def world(runtime: object) -> Iterator[World]:
    world = build_world(runtime.engine)  # type: ignore[attr-defined]
    with world.client:
        yield world


@pytest.fixture(autouse=True)
def no_thresholds(world: World) -> None:
    """Each test starts without thresholds (the world's people and tokens are shared by the module)."""
    with world.engine.begin() as conn:
        for table in ("threshold_crossing", "alert_check", "usage_threshold"):
            conn.execute(text(f"DELETE FROM {table}"))


def _add(world: World, role: str, account: str, body: dict[str, str]) -> tuple[int, dict[str, object]]:
    response = world.client.post(ALERTS.format(a=account), json=body, headers=world.as_role(role, account))
    return response.status_code, response.json()


@pytest.mark.parametrize("account", [OWN, OTHER])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r[0]} {r[1]}")
def test_every_route_answers_as_the_role_table_says_for_own_and_other_account(
    world: World, route: tuple[str, str, dict[str, str] | None, set[str], int], role: str, account: str
) -> None:
    method, path, body, allowed, success = route
    _, made = _add(world, "admin", account, {"measure": "connection_minutes", "limit": "7"})
    url = path.format(a=account, t=made["id"])

    answer = world.client.request(
        method, url, json=body, headers=world.as_role(role)
    )  # a person of OWN or the platform

    platform = role in ("admin", "finance")
    expected = 404 if account == OTHER and not platform else success if role in allowed else 403
    assert answer.status_code == expected, answer.text
    if answer.status_code == 403:
        assert role in answer.json()["detail"]


@pytest.mark.parametrize("role", ROLES)
def test_only_a_superuser_of_the_account_or_an_admin_sets_and_removes_thresholds(world: World, role: str) -> None:
    status, body = _add(world, role, OWN, {"measure": "messages", "limit": "1000", "name": f"by {role}"})

    if role not in MANAGERS:
        assert status == 403, body
        return
    assert status == 201, body
    assert (body["measure"], body["limit"], body["name"], body["account_id"]) == ("messages", "1000", f"by {role}", OWN)
    removed = world.client.delete(f"{ALERTS.format(a=OWN)}/{body['id']}", headers=world.as_role(role))
    assert removed.status_code == 204
    again = world.client.delete(f"{ALERTS.format(a=OWN)}/{body['id']}", headers=world.as_role(role))
    assert again.status_code == 404


@pytest.mark.parametrize("role", ["superuser", "engineer", "billing", "user"])
def test_another_accounts_thresholds_answer_404_to_account_people(world: World, role: str) -> None:
    status, theirs = _add(world, "admin", OTHER, {"measure": "messages", "limit": "5"})
    assert status == 201
    headers = world.as_role(role)  # a person of OWN

    assert world.client.get(ALERTS.format(a=OTHER), headers=headers).status_code == 404
    assert world.client.get(f"{ALERTS.format(a=OTHER)}/crossings", headers=headers).status_code == 404
    forged = world.client.post(ALERTS.format(a=OTHER), json={"measure": "messages", "limit": "5"}, headers=headers)
    assert forged.status_code == 404
    assert world.client.delete(f"{ALERTS.format(a=OTHER)}/{theirs['id']}", headers=headers).status_code == 404
    # Their threshold under our own account's path is unknown too.
    assert (
        world.client.delete(f"{ALERTS.format(a=OWN)}/{theirs['id']}", headers=world.as_role("superuser")).status_code
        == 404
    )


@pytest.mark.parametrize("role", ROLES)
def test_thresholds_are_read_by_usage_readers_and_money_ones_only_by_statement_readers(world: World, role: str) -> None:
    _add(world, "superuser", OWN, {"measure": "amount", "limit": "100.00", "name": "budget"})
    _add(world, "superuser", OWN, {"measure": "gigabytes", "limit": "2.5", "name": "egress"})

    response = world.client.get(ALERTS.format(a=OWN), headers=world.as_role(role))

    if role not in READERS:
        assert response.status_code == 403
        return
    names = {t["name"] for t in response.json()}
    assert "egress" in names
    assert ("budget" in names) == (role in MONEY_READERS)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"measure": "amount", "limit": "10.001"}, "to the cent"),
        ({"measure": "messages", "limit": "0"}, "above zero"),
        ({"measure": "connection_minutes", "limit": "1.5"}, "a whole number"),
        ({"measure": "amount", "limit": "ten"}, "not a decimal number"),
        ({"measure": "messages", "limit": "1e999999"}, "below 10^15"),
    ],
)
def test_a_limit_the_rules_refuse_is_a_400_with_the_reason(world: World, body: dict[str, str], reason: str) -> None:
    status, answer = _add(world, "superuser", OWN, body)

    assert status == 400
    assert reason in str(answer["detail"])


def test_an_unknown_measure_a_nul_or_an_unknown_field_is_refused_by_the_schema(world: World) -> None:
    assert _add(world, "superuser", OWN, {"measure": "dollars", "limit": "1"})[0] == 422
    assert _add(world, "superuser", OWN, {"measure": "messages", "limit": "1", "name": "a\x00b"})[0] == 422
    assert _add(world, "superuser", OWN, {"measure": "messages", "limit": "1", "currency": "EUR"})[0] == 422


def test_setting_and_removing_are_audited_with_who_and_what(world: World) -> None:
    status, body = _add(world, "superuser", OWN, {"measure": "projected_amount", "limit": "250.00", "name": "pace"})
    assert status == 201
    world.client.delete(f"{ALERTS.format(a=OWN)}/{body['id']}", headers=world.as_role("superuser"))

    with Session(world.engine) as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.target == f"threshold {body['id']}").order_by(AuditEntry.id)
        ).all()
    assert [e.action for e in entries] == ["alert.threshold_set", "alert.threshold_removed"]
    assert entries[0].actor == world.user_ids["superuser"]
    assert entries[0].after is not None and entries[0].after["limit"] == "250.00"
    assert entries[1].before is not None and entries[1].after is None
