"""Every products, services and Fanout endpoint × every role × own and other account, against DESIGN.md's table.

The expected sets are written out here from DESIGN.md's "What each role may do", not read from
``billing.domain.roles``, so a wrong entry in the code's table makes this test fail.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from billing.domain.roles import ACCOUNT_ROLES, ROLES
from tests.admin_world import OTHER, OWN, World
from tests.integration.admin_setup import served_world  # noqa: F401  (the world fixture)

READ_ACCOUNT = frozenset(ROLES)  # everyone reads their account's record and products
READ_SERVICES = frozenset({"admin", "superuser", "engineer", "billing", "user"})
MANAGE_SERVICES = frozenset({"superuser", "engineer"})
PURCHASE = frozenset({"superuser"})


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # {service} and {token} are filled in from the seeded world
    allowed: frozenset[str]
    success: int
    body: dict[str, object] | None = None


ENDPOINTS = [
    Endpoint("GET", f"/v1/accounts/{OWN}/products", READ_ACCOUNT, 200),
    Endpoint("PUT", f"/v1/accounts/{OWN}/products/compute", PURCHASE, 200),
    Endpoint("DELETE", f"/v1/accounts/{OWN}/products/fanout", PURCHASE, 204),
    Endpoint("POST", f"/v1/accounts/{OWN}/services", MANAGE_SERVICES, 201, {"name": "s", "type": "compute"}),
    Endpoint("GET", f"/v1/accounts/{OWN}/services", READ_SERVICES, 200),
    Endpoint("GET", "/v1/services/{service}", READ_SERVICES, 200),
    Endpoint("PATCH", "/v1/services/{service}", MANAGE_SERVICES, 200, {"name": "renamed"}),
    Endpoint("POST", "/v1/services/{service}/backends", MANAGE_SERVICES, 201, {"name": "{role}", "address": "o.test"}),
    Endpoint("GET", "/v1/services/{service}/backends", READ_SERVICES, 200),
    Endpoint("PUT", "/enabled-products/v1/fanout/services/{service}", MANAGE_SERVICES, 200),
    Endpoint("GET", "/enabled-products/v1/fanout/services/{service}", READ_SERVICES, 200),
    Endpoint("DELETE", "/enabled-products/v1/fanout/services/{service}", MANAGE_SERVICES, 204),
    Endpoint("GET", f"/enabled-products/v1/fanout/services?account_id={OWN}", READ_SERVICES, 200),
    Endpoint("POST", "/v1/services/{service}/publish-tokens", MANAGE_SERVICES, 201, {}),
    Endpoint("GET", "/v1/services/{service}/publish-tokens", MANAGE_SERVICES, 200),
    Endpoint("DELETE", "/v1/services/{service}/publish-tokens/{token}", MANAGE_SERVICES, 200),
]


def seed(world: World) -> dict[str, str]:
    """Compute and Fanout purchased for OWN, one Compute service with Fanout on, one publish token."""
    superuser = world.as_role("superuser")
    for product in ("compute", "fanout"):
        assert world.client.put(f"/v1/accounts/{OWN}/products/{product}", headers=superuser).status_code == 200
    service = world.client.post(
        f"/v1/accounts/{OWN}/services", json={"name": "a", "type": "compute"}, headers=superuser
    )
    service_id = service.json()["id"]
    assert world.client.put(f"/enabled-products/v1/fanout/services/{service_id}", headers=superuser).status_code == 200
    token = world.client.post(f"/v1/services/{service_id}/publish-tokens", json={}, headers=superuser)
    return {"service": service_id, "token": token.json()["id"]}


def call(world: World, endpoint: Endpoint, ids: dict[str, str], role: str | None, account: str) -> int:
    path = endpoint.path.format(**ids)
    body = None
    if endpoint.body is not None:
        body = {key: value.format(role=f"{role}-{account}") if isinstance(value, str) else value
                for key, value in endpoint.body.items()}  # fmt: skip
    headers = world.as_role(role, account) if role else {}
    return world.client.request(endpoint.method, path, json=body, headers=headers).status_code


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_every_role_gets_the_answer_the_role_table_gives(world: World, endpoint: Endpoint) -> None:
    ids = seed(world)
    wrong = []
    cases = [(None, OWN, 401)]
    cases += [(role, OWN, endpoint.success if role in endpoint.allowed else 403) for role in ROLES]
    cases += [(role, OTHER, 404) for role in sorted(ACCOUNT_ROLES)]
    for role, account, expected in cases:
        status = call(world, endpoint, ids, role, account)
        if status != expected:
            wrong.append(f"{role} of {account}: {status}, expected {expected}")

    assert wrong == []
