"""Every webhook route × every role × own account, another account and the platform, over HTTP.

Written from DESIGN.md's "After finalization" section (and docs/decisions.md, "After
finalization: webhooks"), not read from ``billing.domain.roles``: an account's endpoints are its
superuser's; platform-wide ones are admin's and finance's. Another account's endpoint answers
404, as a missing one does; so does a platform-wide one asked for by an account's person.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.webhooks import events, outbox
from billing.webhooks.orm import WebhookDelivery
from metering.bootstrap import Runtime
from tests.admin_world import OTHER, OWN, World, build_world

PLATFORM = ("admin", "finance")
ACCOUNT_ROLES = ("superuser", "engineer", "billing", "user")
# An IP literal of a public address: accepted by the SSRF rule without a DNS lookup; never called.
URL = "https://93.184.215.14/hooks"
BODY = {"url": URL, "event_types": ["statement.finalized"]}


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # {own}, {other} and {platform} are endpoint ids, {delivery} a delivery of {own}
    allowed: frozenset[str]  # roles answered ``ok`` when asking about their own account or the platform
    ok: int
    owner: str  # "account": the path names OWN's endpoints; "platform": platform-wide ones
    body: dict[str, Any] | None = None


SUPERUSER = frozenset({"superuser"})
PLATFORM_PEOPLE = frozenset(PLATFORM)
ROUTES = [
    Route("POST", "/v1/accounts/{account}/webhook-endpoints", SUPERUSER, 201, "account", BODY),
    Route("GET", "/v1/accounts/{account}/webhook-endpoints", SUPERUSER, 200, "account"),
    Route("GET", "/v1/webhook-endpoints/{endpoint}", SUPERUSER, 200, "account"),
    Route("PATCH", "/v1/webhook-endpoints/{endpoint}", SUPERUSER, 200, "account", {"enabled": True}),
    Route("GET", "/v1/webhook-endpoints/{endpoint}/deliveries", SUPERUSER, 200, "account"),
    Route("POST", "/v1/webhook-endpoints/{endpoint}/deliveries/{delivery}/redeliver", SUPERUSER, 202, "account"),
    Route("POST", "/v1/webhook-endpoints", PLATFORM_PEOPLE, 201, "platform", BODY),
    Route("GET", "/v1/webhook-endpoints", PLATFORM_PEOPLE, 200, "platform"),
    Route("GET", "/v1/webhook-endpoints/{endpoint}", PLATFORM_PEOPLE, 200, "platform"),
    Route("PATCH", "/v1/webhook-endpoints/{endpoint}", PLATFORM_PEOPLE, 200, "platform", {"enabled": True}),
    Route("GET", "/v1/webhook-endpoints/{endpoint}/deliveries", PLATFORM_PEOPLE, 200, "platform"),
    Route("POST", "/v1/webhook-endpoints/{endpoint}/deliveries/{delivery}/redeliver", PLATFORM_PEOPLE, 202, "platform"),
]


@pytest.fixture(scope="module")
def world(runtime: Runtime) -> Iterator[World]:
    world = build_world(runtime.engine)
    with world.client:
        yield world


def _register(world: World, path: str, role: str, account: str = OWN) -> str:
    answer = world.client.post(path, json=BODY, headers=world.as_role(role, account))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _seed(world: World) -> dict[str, dict[str, str]]:
    """An endpoint of OWN, of OTHER and of the platform, each with one delivery to redeliver."""
    ids = {
        OWN: _register(world, f"/v1/accounts/{OWN}/webhook-endpoints", "superuser"),
        OTHER: _register(world, f"/v1/accounts/{OTHER}/webhook-endpoints", "superuser", OTHER),
        "platform": _register(world, "/v1/webhook-endpoints", "admin"),
    }
    with world.engine.begin() as conn:
        for account in (OWN, OTHER):
            outbox.record_event(conn, events.STATEMENT_FINALIZED, account, {"account_id": account})
    with Session(world.engine) as session:
        delivery = {
            endpoint: str(
                session.scalars(
                    select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint).limit(1)
                ).one()
            )
            for endpoint in ids.values()
        }
    return {
        target: {
            "account": OWN if target == "platform" else target,
            "endpoint": ids[target],
            "delivery": delivery[ids[target]],
        }
        for target in ids
    }


def expected(route: Route, role: str | None, target: str) -> int:
    """``target`` is OWN, OTHER or "platform" (the endpoint, or account, the path names)."""
    if role is None:
        return 401
    account_person = role in ACCOUNT_ROLES
    if route.owner == "account" and target == OTHER and account_person:
        return 404  # another account's: exactly like a missing one
    if route.owner == "platform" and account_person and "{endpoint}" in route.path:
        return 404  # a platform endpoint fetched by id is outside an account person's account
    return route.ok if role in route.allowed and target != OTHER else 403


def test_every_webhook_route_answers_each_role_as_the_role_table_says(world: World) -> None:
    ids = _seed(world)
    wrong = []
    for route in ROUTES:
        targets = (OWN, OTHER) if route.owner == "account" else ("platform",)
        for target in targets:
            for role in (None, *PLATFORM, *ACCOUNT_ROLES):
                headers = world.as_role(role) if role else {}
                path = route.path.format(**ids[target])
                status = world.client.request(route.method, path, json=route.body, headers=headers).status_code
                if status != expected(route, role, target):
                    wrong.append(f"{route.method} {path} as {role}: {status}, expected {expected(route, role, target)}")
    assert wrong == []


def test_the_secret_is_shown_once_and_a_refused_url_or_event_type_is_a_400_naming_it(world: World) -> None:
    superuser = world.as_role("superuser")
    made = world.client.post(f"/v1/accounts/{OWN}/webhook-endpoints", json=BODY, headers=superuser)
    again = world.client.get(f"/v1/webhook-endpoints/{made.json()['id']}", headers=superuser)
    loopback = world.client.post(
        f"/v1/accounts/{OWN}/webhook-endpoints", json={**BODY, "url": "http://127.0.0.1:8080/x"}, headers=superuser
    )
    unknown = world.client.post(
        f"/v1/accounts/{OWN}/webhook-endpoints", json={**BODY, "event_types": ["statement.eaten"]}, headers=superuser
    )
    credentials = world.client.post(
        f"/v1/accounts/{OWN}/webhook-endpoints", json={**BODY, "url": "https://u:p@93.184.215.14/"}, headers=superuser
    )

    assert made.status_code == 201 and made.json()["secret"].startswith("whsec_")
    assert again.status_code == 200 and "secret" not in again.json()
    assert loopback.status_code == 400 and "url: 127.0.0.1 is a loopback address" in loopback.text
    assert unknown.status_code == 400 and "statement.eaten" in unknown.text
    assert credentials.status_code == 400 and "user name or password" in credentials.text
