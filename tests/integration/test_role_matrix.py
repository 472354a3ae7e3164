"""Every endpoint x every role x own/other account: DESIGN.md's role table, enforced over HTTP.

The table below is written from DESIGN.md, not from ``billing.domain.roles``, so a route that
forgets its check or checks the wrong action fails here. A route missing from the table fails
``test_every_route_is_in_the_matrix``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

from billing import accounts
from billing.access import issue
from billing.orm import EventSubmission
from metering.bootstrap import Runtime
from tests.admin_world import OTHER, OWN, SEEDER, World, build_world
from tests.integration import test_services_role_matrix as services_matrix
from tests.integration import test_statement_roles as statement_matrix
from tests.integration import test_usage_alerts_api as alerts_matrix
from tests.integration import test_webhook_roles as webhook_matrix

PLATFORM = ("admin", "finance")
ACCOUNT_ROLES = ("superuser", "engineer", "billing", "user")
ROLES = PLATFORM + ACCOUNT_ROLES
ALL, OWN_ONLY = "all", "own"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # "{account}" and the names a ``target`` returns are filled in per call
    allowed: dict[str, str]  # role -> ALL | OWN_ONLY, straight from DESIGN.md's table
    ok: int = 200
    body: Callable[[], Any] | None = None
    target: Callable[[World, str], dict[str, str]] = field(default=lambda _world, _account: {})
    per_account: bool = True  # False: the path names no account (platform-level actions)

    @property
    def route(self) -> str:
        return self.path.replace("{account}", "{account_id}")


def _user_in(world: World, account: str) -> dict[str, str]:
    with Session(world.engine, expire_on_commit=False) as session:
        user = accounts.create_user(
            session,
            SEEDER,
            account_id=account,
            email=f"{uuid.uuid4().hex[:10]}@x.test",
            role="user",
            now=world.clock.now,
        )
    return {"user_id": user.id}


def _token_in(world: World, account: str) -> dict[str, str]:
    user_id = _user_in(world, account)["user_id"]
    with Session(world.engine, expire_on_commit=False) as session:
        issued = issue(session, kind="user", name="victim", now=world.clock.now, user_id=user_id, account_id=account)
        session.commit()
    return {"token_id": issued.row.id}


def _email() -> dict[str, str]:
    return {"email": f"{uuid.uuid4().hex[:10]}@x.test", "role": "engineer"}


READ_ACCOUNT = {"admin": ALL, "finance": ALL, **dict.fromkeys(ACCOUNT_ROLES, OWN_ONLY)}
MANAGE_PEOPLE = {"admin": ALL, "superuser": OWN_ONLY}
READ_USAGE = {"admin": ALL, "finance": ALL, "superuser": OWN_ONLY, "engineer": OWN_ONLY, "billing": OWN_ONLY}
BATCH = "api-0123456789abcdef0123x1"

ENDPOINTS = [
    Endpoint(
        "POST",
        "/v1/accounts",
        {"admin": ALL},
        201,
        lambda: {"name": "n", "id": uuid.uuid4().hex[:12]},
        per_account=False,
    ),
    Endpoint("GET", "/v1/accounts/{account}", READ_ACCOUNT),
    Endpoint("PUT", "/v1/accounts/{account}/plan", {"admin": ALL}, body=lambda: {"plan": "paid"}),
    Endpoint("GET", "/v1/accounts/{account}/users", MANAGE_PEOPLE),
    Endpoint("POST", "/v1/accounts/{account}/users", MANAGE_PEOPLE, 201, _email),
    Endpoint("GET", "/v1/accounts/{account}/tokens", MANAGE_PEOPLE),
    Endpoint("POST", "/v1/users/{user_id}/tokens", MANAGE_PEOPLE, 201, lambda: {"name": "t"}, _user_in),
    Endpoint("DELETE", "/v1/users/{user_id}", MANAGE_PEOPLE, 204, target=_user_in),
    Endpoint("DELETE", "/v1/tokens/{token_id}", MANAGE_PEOPLE, target=_token_in),
    Endpoint("GET", "/v1/platform/users", {"admin": ALL}, per_account=False),
    Endpoint(
        "POST", "/v1/platform/users", {"admin": ALL}, 201, lambda: {**_email(), "role": "finance"}, per_account=False
    ),
    Endpoint("POST", "/v1/ingest-tokens", {"admin": ALL}, 201, lambda: {"name": "i"}, per_account=False),
    Endpoint("GET", f"/v1/events/batches/{BATCH}", {"admin": ALL}, per_account=False),
    Endpoint("POST", "/v1/events", {}, 202, lambda: [], per_account=False),  # ingest tokens only
    Endpoint("GET", "/v1/accounts/{account}/usage", READ_USAGE),
    Endpoint("GET", "/v1/accounts/{account}/usage/daily", READ_USAGE),
    Endpoint("GET", "/v1/accounts/{account}/usage.csv", READ_USAGE),
]
# Answer without a token by design: the list is the whole exception.
# The API docs pages are as public as the OpenAPI document they render.
PUBLIC = {("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/docs"), ("GET", "/redoc")}


def expected_status(endpoint: Endpoint, role: str, account: str) -> int:
    scope = endpoint.allowed.get(role)
    foreign = role in ACCOUNT_ROLES and account == OTHER and endpoint.per_account
    if foreign:
        return 404
    if scope == ALL or (scope == OWN_ONLY and account == OWN):
        return endpoint.ok
    return 403


@pytest.fixture(scope="module")
def world(runtime: Runtime) -> Iterator[World]:
    world = build_world(runtime.engine)
    with Session(world.engine) as session:  # a batch the admin may read (an unknown id is 404 to anyone)
        session.add(EventSubmission(batch_id=BATCH, token_id="tok_sender", created_at=world.clock.now))
        session.commit()
    with world.client:
        yield world


def _call(world: World, endpoint: Endpoint, account: str, headers: dict[str, str]) -> int:
    params = {"account": account, **endpoint.target(world, account)}
    path = endpoint.path.format(**params)
    body = endpoint.body() if endpoint.body else None
    return world.client.request(endpoint.method, path, json=body, headers=headers).status_code


CASES = [
    pytest.param(endpoint, role, account, id=f"{endpoint.method} {endpoint.path} {role} {account}")
    for endpoint in ENDPOINTS
    for role in ROLES
    for account in ((OWN, OTHER) if endpoint.per_account else (OWN,))
]


@pytest.mark.parametrize(("endpoint", "role", "account"), CASES)
def test_each_role_gets_what_the_role_table_says(world: World, endpoint: Endpoint, role: str, account: str) -> None:
    # The caller is always a person of OWN (or the platform); "other" is the account acted on.
    assert _call(world, endpoint, account, world.as_role(role)) == expected_status(endpoint, role, account)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_without_a_token_every_endpoint_answers_401(world: World, endpoint: Endpoint) -> None:
    assert _call(world, endpoint, OWN, {}) == 401


def _shape(path: str) -> str:
    """A route template with its parameter names and query left out: ``/v1/services/{}``."""
    path = path.split("?")[0].replace(BATCH, "{}").replace(OWN, "{}")
    path = re.sub(r"/\d{4}-\d{2}(?=[/.]|$)", "/{}", path)  # a month in a statement path
    return re.sub(r"\{[^}]*\}", "{}", path)


def test_every_route_is_in_a_role_matrix(world: World) -> None:
    routes = {
        (method, _shape(route.path))
        for route in world.client.app.routes  # type: ignore[attr-defined]
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    matrices = (*ENDPOINTS, *services_matrix.ENDPOINTS)
    statement_endpoints = (*statement_matrix.ACCOUNT_ENDPOINTS, *statement_matrix.PLATFORM_ENDPOINTS)
    covered = {(e.method, _shape(e.path)) for e in matrices} | {(m, _shape(p)) for m, p in PUBLIC}
    covered |= {(method, _shape(path)) for method, path, _body, _action in statement_endpoints}
    covered |= {(route.method, _shape(route.path)) for route in webhook_matrix.ROUTES}
    covered |= {(method, _shape(path)) for method, path, *_ in alerts_matrix.ROUTES}

    assert routes - covered == set()
