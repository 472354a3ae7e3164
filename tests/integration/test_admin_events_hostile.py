"""Hostile bodies on POST /v1/events and who may read a batch's status (findings 5, 12, 13, 15)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from billing.api.app import create_app
from billing.settings import BillingSettings
from metering.client import PipelineClient
from tests.admin_world import OWN, World, build_world
from tests.integration.admin_setup import ingest_headers_for as ingest_headers
from tests.integration.admin_setup import send_and_wait
from tests.strategies import published_event, utc_micros


class RecordingPipeline(PipelineClient):
    """The real client, remembering every batch handed to it."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.sent: list[str] = []

    def submit(self, batch_id: str, payloads: Sequence[str]) -> None:
        self.sent.append(batch_id)
        super().submit(batch_id, payloads)


@pytest.fixture
def world(engine: Engine, worker: Any) -> Iterator[World]:  # noqa: ARG001
    world = build_world(engine)
    pipeline = RecordingPipeline(engine)
    world.client = TestClient(create_app(engine, BillingSettings(), clock=world.clock, pipeline=pipeline))
    world.pipeline = pipeline  # type: ignore[attr-defined]
    with world.client:
        yield world
        # Every batch a test handed on is done before the next world starts: one left queued was
        # recorded into whichever test (of this module or the next) ran when the worker got to it.
        deadline = time.monotonic() + 60
        while pipeline.recorded(pipeline.sent) != set(pipeline.sent):
            assert time.monotonic() < deadline, f"batches not recorded in time: {pipeline.sent}"
            time.sleep(0.1)


def event(**data: Any) -> dict[str, Any]:
    built = published_event(utc_micros("2026-03-14T12:00:00Z"), 1, account=OWN, service="svc_a")
    built["data"].update(data)
    return built


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 100_000, "nested too deeply"),
        (b"{" * 100_000, "the body is not"),
        (b'[{"a": 1, "a": 2, "x": ' + b"[" * 900 + b"]" * 900 + b"}]", "nested too deeply"),  # was a 500
        (b'[{"count": ' + b"9" * 5000 + b"}]", "an integer has too many digits"),
        (b'[{"id": "\\ud800"}]', "event 0 holds a lone surrogate"),
        (json.dumps([event(), event(channel="\ud800x")]).encode(), "event 1 holds a lone surrogate"),
    ],
)
def test_hostile_json_is_a_400_with_a_reason_and_nothing_is_sent_on(world: World, body: bytes, reason: str) -> None:
    response = world.client.post("/v1/events", content=body, headers=ingest_headers(world))

    assert response.status_code == 400, response.text
    assert reason in response.json()["detail"]
    assert world.pipeline.sent == []  # type: ignore[attr-defined]


@pytest.mark.usefixtures("worker")
def test_a_key_given_twice_and_a_nul_in_any_string_are_rejected_with_their_reasons(world: World) -> None:
    duplicated = json.dumps(event(count=1)).replace('"count": 1', '"count": 1, "count": 1000000000')
    nul_id = json.dumps({**event(), "id": "e\x00"})
    nul_account = json.dumps(event(account_id=OWN + "\x00"))
    body = f"[{duplicated}, {nul_id}, {nul_account}, {json.dumps(event())}]"

    status = send_and_wait(world, ingest_headers(world), body)

    assert (status["accepted"], status["rejected"]) == (1, 3)
    assert status["rejection_reasons"] == {
        "duplicate key 'count' in an object (an event names each field once)": 1,
        "id contains a NUL character": 1,
        "data.account_id contains a NUL character": 1,
    }


def test_a_batch_status_is_for_the_token_that_sent_it_and_unknown_ids_are_404(world: World) -> None:
    sender, other = ingest_headers(world, "sender"), ingest_headers(world, "other")
    batch_id = world.client.post("/v1/events", content=json.dumps([event()]), headers=sender).json()["batch_id"]
    never_sent = "api-0123456789abcdef0123x1"

    assert world.client.get(f"/v1/events/batches/{batch_id}", headers=sender).status_code == 200
    assert world.client.get(f"/v1/events/batches/{batch_id}", headers=world.as_role("admin")).status_code == 200
    for headers, batch in ((other, batch_id), (sender, never_sent), (world.as_role("admin"), never_sent)):
        response = world.client.get(f"/v1/events/batches/{batch}", headers=headers)
        assert (response.status_code, response.json()) == (404, {"detail": f"no batch {batch!r}"})
