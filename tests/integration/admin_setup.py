"""Set-ups the admin API's integration tests share: the world served by its app, an ingest token's
headers, a batch sent and waited for, a service and a backend made through the API.

``world`` is a fixture (the function ``served_world``): a test module takes it by importing ``served_world``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.admin_world import OWN, World, build_world

BATCH = "application/cloudevents-batch+json"


@pytest.fixture(name="world")
def served_world(engine: Engine) -> Iterator[World]:
    """The admin world (`build_world`) with its test client's app started."""
    world = build_world(engine)
    with world.client:
        yield world


def ingest_headers_for(world: World, name: str = "broker") -> dict[str, str]:
    """Headers that post an event batch with a new ingest token called ``name``."""
    issued = world.client.post("/v1/ingest-tokens", json={"name": name}, headers=world.as_role("admin"))
    assert issued.status_code == 201
    return {"Authorization": f"Bearer {issued.json()['token']}", "Content-Type": BATCH}


def send_and_wait(world: World, headers: dict[str, str], body: str) -> dict[str, Any]:
    """POST ``body`` to /v1/events (202) and return the batch's status once the worker has done it."""
    sent = world.client.post("/v1/events", content=body, headers=headers)
    assert sent.status_code == 202, sent.text
    batch_id = sent.json()["batch_id"]
    deadline = time.monotonic() + 60
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = world.client.get(f"/v1/events/batches/{batch_id}", headers=headers).json()
        if status["done"]:
            return status
        time.sleep(0.2)
    raise AssertionError(f"batch {batch_id} not processed in time: {status}")


def new_service(world: World, type_: str = "compute", **flags: bool) -> str:
    """A service of OWN made by its engineer; its id."""
    body = {"name": f"{type_} service", "type": type_, **flags}
    response = world.client.post(f"/v1/accounts/{OWN}/services", json=body, headers=world.as_role("engineer"))
    assert response.status_code == 201, response.text
    service_id: str = response.json()["id"]
    return service_id


def add_backend(world: World, service_id: str, **body: Any):
    """POST a backend (``origin`` at origin.example unless ``body`` says otherwise) as OWN's engineer."""
    body = {"name": "origin", "address": "origin.example", **body}
    return world.client.post(f"/v1/services/{service_id}/backends", json=body, headers=world.as_role("engineer"))
