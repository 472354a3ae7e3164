"""The role table on every rate-card, statement and audit endpoint: each role, own and other account."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from billing.domain.roles import PERMISSIONS as TABLE
from billing.domain.roles import ROLES, Action, Scope
from tests.admin_world import OTHER, OWN, World, build_world

CARD = {
    "effective_month": "2026-06",
    "card": {
        "name": "c",
        "currency": "USD",
        "connection_minutes": [{"up_to": None, "unit_price": "1"}],
        "messages": [{"up_to": None, "unit_price": "2"}],
        "bandwidth": [{"up_to": None, "unit_price": "0.12"}],
    },
}
ACCOUNT_ENDPOINTS: list[tuple[str, str, Any, Action]] = [
    ("GET", "/v1/accounts/{a}/rate-card", None, Action.READ_STATEMENTS),
    ("PUT", "/v1/accounts/{a}/rate-card", CARD, Action.SET_RATES),
    ("GET", "/v1/accounts/{a}/statements", None, Action.READ_STATEMENTS),
    ("GET", "/v1/accounts/{a}/statements/2026-03", None, Action.READ_STATEMENTS),
    ("GET", "/v1/accounts/{a}/statements/2026-03.csv", None, Action.READ_STATEMENTS),
    ("GET", "/v1/accounts/{a}/statements/2026-03.pdf", None, Action.READ_STATEMENTS),
    ("GET", "/v1/accounts/{a}/statements/2026-03/adjustments", None, Action.READ_STATEMENTS),
    ("POST", "/v1/accounts/{a}/statements/2026-03/regenerate", None, Action.MANAGE_STATEMENTS),
    (
        "POST",
        "/v1/accounts/{a}/statements/2026-03/adjustments",
        {"amount": "-1.00", "reason": "r"},
        Action.MANAGE_STATEMENTS,
    ),
    ("POST", "/v1/accounts/{a}/statements/2026-03/finalize", None, Action.MANAGE_STATEMENTS),
    ("GET", "/v1/accounts/{a}/audit", None, Action.READ_AUDIT),
]
PLATFORM_ENDPOINTS: list[tuple[str, str, Any, Action]] = [
    ("GET", "/v1/rate-cards/default", None, Action.READ_STATEMENTS),
    ("PUT", "/v1/rate-cards/default", CARD, Action.SET_RATES),
    ("GET", "/v1/audit", None, Action.READ_AUDIT),
]


@pytest.fixture(scope="module")
def world(runtime: Any) -> Iterator[World]:
    world = build_world(runtime.engine)
    world.clock.now = datetime(2026, 4, 10, tzinfo=UTC)  # March has closed: regenerate can succeed
    with world.client:
        yield world


def expected(role: str, action: Action, account: str | None) -> str:
    scope = TABLE[action].get(role)
    if account == OTHER and role not in ("admin", "finance"):
        return "404"
    if scope is Scope.ALL or (scope is Scope.OWN and account == OWN):
        return "ok"
    return "403"


def outcome(status: int) -> str:
    # 409 is a state answer (e.g. finalizing a month without a draft): the caller was let in.
    return "ok" if 200 <= status < 300 or status == 409 else str(status)


@pytest.mark.parametrize("account", [OWN, OTHER])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path", "body", "action"), ACCOUNT_ENDPOINTS, ids=lambda v: str(v))
def test_account_endpoints_follow_the_role_table(
    world: World, method: str, path: str, body: Any, action: Action, role: str, account: str
) -> None:
    response = world.client.request(method, path.format(a=account), json=body, headers=world.as_role(role))

    assert outcome(response.status_code) == expected(role, action, account), response.text


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path", "body", "action"), PLATFORM_ENDPOINTS, ids=lambda v: str(v))
def test_platform_endpoints_follow_the_role_table(
    world: World, method: str, path: str, body: Any, action: Action, role: str
) -> None:
    response = world.client.request(method, path, json=body, headers=world.as_role(role))

    assert outcome(response.status_code) == expected(role, action, None), response.text


@pytest.mark.parametrize(("method", "path", "body", "action"), ACCOUNT_ENDPOINTS + PLATFORM_ENDPOINTS, ids=str)
def test_every_endpoint_without_a_token_is_401(world: World, method: str, path: str, body: Any, action: Action) -> None:  # noqa: ARG001
    assert world.client.request(method, path.format(a=OWN), json=body).status_code == 401
