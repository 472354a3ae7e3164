"""Each change DESIGN.md names writes its webhook event, in its own transaction, through the admin API.

A platform-wide endpoint is registered first; then Fanout is purchased, turned on for a service
and cancelled (which turns the service off), March's draft is built, finalized and credited. The
outbox holds one event per change, in that order, each with a pending delivery to the endpoint.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from billing.webhooks.orm import WebhookDelivery, WebhookEvent
from tests.admin_world import OWN, World, build_world
from tests.integration.test_credit_notes_api import NOTES, finalized_march
from tests.integration.test_services_role_matrix import seed
from tests.integration.test_webhook_roles import BODY


@pytest.fixture
def world(engine: Engine) -> Iterator[World]:
    world = build_world(engine)
    with world.client:
        yield world


def outbox(world: World) -> list[tuple[str, str | None, dict[str, object]]]:
    with Session(world.engine) as session:
        rows = session.scalars(select(WebhookEvent).order_by(WebhookEvent.seq))
        return [(row.type, row.account_id, row.data) for row in rows]


def test_fanout_statement_and_credit_note_changes_each_write_their_event_with_a_delivery(world: World) -> None:
    all_types = {**BODY, "event_types": ["statement.drafted", "statement.finalized", "credit_note.issued",
                                         "fanout.enabled", "fanout.disabled"]}  # fmt: skip
    endpoint = world.client.post("/v1/webhook-endpoints", json=all_types, headers=world.as_role("admin")).json()
    service = seed(world)["service"]  # Fanout purchased, then on for one service
    cancelled = world.client.delete(f"/v1/accounts/{OWN}/products/fanout", headers=world.as_role("superuser"))
    statement = finalized_march(world)
    note = world.client.post(NOTES, json={"reason": "outage", "amount": "2.50"}, headers=world.as_role("finance"))

    assert cancelled.status_code == 204 and note.status_code == 201
    events = outbox(world)
    assert [(kind, account) for kind, account, _ in events] == [
        ("fanout.enabled", OWN),
        ("fanout.enabled", OWN),
        ("fanout.disabled", OWN),
        ("fanout.disabled", OWN),
        ("statement.drafted", OWN),
        ("statement.finalized", OWN),
        ("credit_note.issued", OWN),
    ]
    fanout = [data for kind, _, data in events if kind.startswith("fanout.")]
    assert [(d["scope"], d["service_id"]) for d in fanout] == [
        ("account", None),
        ("service", service),
        ("service", service),  # turned off by the cancellation, in its transaction
        ("account", None),
    ]
    drafted, finalized, credited = (data for _, _, data in events[4:])
    assert (drafted["status"], drafted["regenerated"], drafted["number"]) == ("draft", False, None)
    assert {key: finalized[key] for key in ("status", "total", "number", "content_hash")} == {
        key: statement[key] for key in ("status", "total", "number", "content_hash")
    }
    assert (credited["total"], credited["statement_number"], credited["reason"]) == (
        "2.50",
        statement["number"],
        "outage",
    )
    with Session(world.engine) as session:
        pending = session.scalars(select(WebhookDelivery.status).where(WebhookDelivery.endpoint_id == endpoint["id"]))
        assert list(pending) == ["pending"] * 7


def test_a_refused_change_writes_no_event(world: World) -> None:
    """Finalizing twice: the second is refused (409) and its transaction, event and all, rolls back."""
    finalized_march(world)
    before = outbox(world)

    again = world.client.post(f"/v1/accounts/{OWN}/statements/2026-03/finalize", headers=world.as_role("finance"))

    assert again.status_code == 409
    assert outbox(world) == before
