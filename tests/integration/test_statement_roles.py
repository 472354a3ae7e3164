"""The role table on every rate-card, statement and audit endpoint: each role, own and other account."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.orm import Session

from billing import credit_notes, statements
from billing.domain.credit_notes import CreditRequest
from billing.domain.roles import PERMISSIONS as TABLE
from billing.domain.roles import ROLES, Action, Principal, Scope
from kernel.instants import Month
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
    ("GET", "/v1/accounts/{a}/statements/2026-02/credit-notes", None, Action.READ_STATEMENTS),
    ("GET", "/v1/accounts/{a}/statements/2026-02/credit-notes/{cn}", None, Action.READ_STATEMENTS),
    ("GET", "/v1/accounts/{a}/statements/2026-02/credit-notes/{cn}.csv", None, Action.READ_STATEMENTS),
    ("GET", "/v1/accounts/{a}/statements/2026-02/credit-notes/{cn}.pdf", None, Action.READ_STATEMENTS),
    (
        "POST",
        "/v1/accounts/{a}/statements/2026-02/credit-notes",
        {"amount": "0.01", "reason": "r"},
        Action.MANAGE_STATEMENTS,
    ),
    ("GET", "/v1/accounts/{a}/audit", None, Action.READ_AUDIT),
]
PLATFORM_ENDPOINTS: list[tuple[str, str, Any, Action]] = [
    ("GET", "/v1/rate-cards/default", None, Action.READ_STATEMENTS),
    ("PUT", "/v1/rate-cards/default", CARD, Action.SET_RATES),
    ("GET", "/v1/audit", None, Action.READ_AUDIT),
]


# February is finalized in both accounts (a charge of 100.00) with one credit note each, issued in this order.
CREDIT_NOTES = {OWN: "CN-2026-000001", OTHER: "CN-2026-000002"}
FEBRUARY = Month(2026, 2)


@pytest.fixture(scope="module")
def world(runtime: Any) -> Iterator[World]:
    world = build_world(runtime.engine)
    world.clock.now = datetime(2026, 4, 10, tzinfo=UTC)  # March has closed: regenerate can succeed
    finance = Principal(token_id="seed", kind="user", role="finance", user_id="seed")
    for account in CREDIT_NOTES:
        with Session(world.engine) as session:
            statements.add_adjustment(
                session,
                finance,
                account,
                FEBRUARY,
                amount=Decimal(100),
                reason="r",
                service_id=None,
                now=world.clock.now,
            )
        with world.engine.begin() as conn:
            statements.build_drafts(conn, FEBRUARY, world.clock.now, only=[account])
        with Session(world.engine) as session:
            statements.finalize(session, finance, account, FEBRUARY, world.clock.now)
            note = credit_notes.issue(
                session, finance, account, FEBRUARY, CreditRequest("r", amount=Decimal(1)), world.clock.now
            )
        assert note.number == CREDIT_NOTES[account]
    with world.client:
        yield world


def _path(path: str, account: str) -> str:
    return path.format(a=account, cn=CREDIT_NOTES[account])


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
    response = world.client.request(method, _path(path, account), json=body, headers=world.as_role(role))

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
    assert world.client.request(method, _path(path, OWN), json=body).status_code == 401
