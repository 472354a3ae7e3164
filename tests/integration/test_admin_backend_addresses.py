"""Finding 2 (configuration half): an account's backend may not point inside the operator's network.

The admin API refuses loopback, private, link-local, metadata (...) addresses and names resolving to
them, unless FANMETER_BACKEND_ALLOWED_NETWORKS lists the network; addresses and host names are
validated as such, and the configuration-time TLS check never connects to a refused address.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from billing import backend_address
from billing.orm import Backend
from billing.settings import BillingSettings
from tests.admin_world import OWN, World, build_world
from tests.integration.admin_setup import add_backend, new_service
from tests.tls_origin import self_signed, serving

FANOUT = "/enabled-products/v1/fanout/services"


@pytest.fixture
def world(engine: Engine) -> Iterator[World]:
    world = build_world(engine, settings=BillingSettings(tls_check_timeout_seconds=2))
    with world.client:
        yield world


@pytest.mark.parametrize(
    ("address", "category"),
    [
        ("127.0.0.1", "loopback"),  # the probe: 127.0.0.1:<admin port>
        ("::1", "loopback"),
        ("localhost", "loopback"),
        ("10.0.0.8", "private"),
        ("192.168.0.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("239.1.1.1", "multicast"),
    ],
)
def test_a_backend_at_a_non_public_address_is_refused_with_the_reason(
    world: World, address: str, category: str
) -> None:
    response = add_backend(world, new_service(world), address=address, port=8480)

    assert response.status_code == 400, response.text
    assert category in response.json()["detail"]
    with Session(world.engine) as session:
        assert session.scalars(select(Backend)).all() == []


def test_a_host_name_that_resolves_to_a_private_address_is_refused(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolved = {"internal.example": ["10.1.2.3"], "public.example": ["93.184.215.14"]}
    monkeypatch.setattr(backend_address, "_getaddrinfo", lambda host, _port: resolved[host])
    service_id = new_service(world)

    refused = add_backend(world, service_id, address="internal.example")
    accepted = add_backend(world, service_id, name="public", address="public.example")

    assert refused.status_code == 400
    assert refused.json()["detail"] == (
        "backend 'origin' at internal.example: internal.example resolves to 10.1.2.3 is a private address; "
        "backends must be public (an operator may allow it in FANMETER_BACKEND_ALLOWED_NETWORKS)"
    )
    assert accepted.status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        {"address": "127.0.0.1:18480/v1#"},
        {"address": "origin.example/v1"},
        {"address": "user@origin.example"},
        {"address": "origin.example?a=b"},
        {"address": "origin example"},
        {"address": "origin.example\r\nX-Injected: yes"},
        {"override_host": "app.example\r\nX-Injected: yes"},
        {"override_host": "app.example\x01"},
        {"override_host": "app.example/path"},
        {"override_host": "app.example:70000"},
        {"port": 0},
        {"port": 65536},
    ],
)
def test_addresses_host_names_and_ports_are_validated_as_such(world: World, body: dict[str, Any]) -> None:
    response = add_backend(world, new_service(world), **body)

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["msg"]  # with the reason


def test_an_override_host_with_a_port_is_a_host(world: World) -> None:
    assert add_backend(world, new_service(world), override_host="app.example:8443").status_code == 201


def test_the_tls_check_never_connects_to_a_refused_address(world: World, tmp_path: Path) -> None:
    with serving(self_signed(tmp_path)) as origin:
        response = add_backend(world, new_service(world), address="127.0.0.1", port=origin.port, use_tls=True)

    assert response.status_code == 400
    assert origin.connections == 0


def test_the_operator_allows_listed_networks(engine: Engine) -> None:
    world = build_world(engine, settings=BillingSettings(backend_allowed_networks="127.0.0.0/8, 10.20.0.0/16"))
    with world.client:
        service_id = new_service(world)
        loopback = add_backend(world, service_id, address="127.0.0.1", port=8080)
        listed = add_backend(world, service_id, name="listed", address="10.20.0.9")
        unlisted = add_backend(world, service_id, name="unlisted", address="10.21.0.9")

    assert (loopback.status_code, listed.status_code, unlisted.status_code) == (201, 201, 400)


def test_a_bad_allowed_network_stops_the_settings_with_its_name() -> None:
    with pytest.raises(ValueError, match="'10.0.0.0/33'"):
        BillingSettings(backend_allowed_networks="10.0.0.0/33")


def test_fanout_is_refused_for_a_service_with_a_backend_the_rule_now_refuses(engine: Engine) -> None:
    allowing = build_world(engine, settings=BillingSettings(backend_allowed_networks="10.0.0.0/8"))
    with allowing.client:
        for product in ("compute", "fanout"):
            allowing.client.put(f"/v1/accounts/{OWN}/products/{product}", headers=allowing.as_role("superuser"))
        service_id = new_service(allowing)
        assert add_backend(allowing, service_id, address="10.0.0.8").status_code == 201
    from fastapi.testclient import TestClient

    from billing.api.app import create_app  # the same database, an operator who no longer allows 10/8

    with TestClient(create_app(engine, BillingSettings(), clock=allowing.clock)) as strict:
        response = strict.put(f"{FANOUT}/{service_id}", headers=allowing.as_role("engineer"))

    assert response.status_code == 400
    assert "10.0.0.8 is a private address" in response.json()["detail"]
