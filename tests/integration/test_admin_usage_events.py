"""Events in through ``POST /v1/events``, usage out through the usage API, with a real worker."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.admin_world import OTHER, OWN, World
from tests.integration.admin_setup import BATCH, ingest_headers_for, send_and_wait, served_world  # noqa: F401  (the world fixture)
from tests.strategies import close_event, delivered_event, open_event, published_event, utc_micros


@pytest.fixture
def ingest_headers(world: World) -> dict[str, str]:
    return ingest_headers_for(world)


def _trace() -> list[dict[str, Any]]:
    """Two services of OWN on 2026-03-14 and 15: 90 s and 60 s connections, messages, bytes."""
    t = utc_micros("2026-03-14T23:59:00Z")
    return [
        open_event(t, account=OWN, service="svc_a", connection="c1"),
        # 2 minutes: the first begins on the 14th, the second at midnight, on the 15th
        close_event(t + 90_000_000, 5_000, account=OWN, service="svc_a", connection="c1"),
        open_event(t + 120_000_000, account=OWN, service="svc_b", connection="c2"),
        close_event(t + 180_000_000, 700, account=OWN, service="svc_b", connection="c2"),  # 1 minute on the 15th
        published_event(t + 150_000_000, 3, account=OWN, service="svc_a"),
        delivered_event(t + 151_000_000, 12, account=OWN, service="svc_a"),
    ]


def _service(service_id: str, minutes: int, published: int, delivered: int, bytes_out: int) -> dict[str, Any]:
    return {
        "service_id": service_id,
        "connection_minutes": minutes,
        "messages_published": published,
        "messages_delivered": delivered,
        "bytes_out": bytes_out,
    }


def _send_and_wait(world: World, headers: dict[str, str], events: list[Any]) -> dict[str, Any]:
    return send_and_wait(world, headers, json.dumps(events))


@pytest.mark.usefixtures("worker")
def test_events_posted_with_an_ingest_token_come_out_as_exact_usage_daily_and_csv(
    world: World, ingest_headers: dict[str, str]
) -> None:
    trace = _trace()
    status = _send_and_wait(world, ingest_headers, [*trace, trace[0]])  # one duplicate
    headers = world.as_role("billing")

    usage = world.client.get(f"/v1/accounts/{OWN}/usage", params={"month": "2026-03"}, headers=headers).json()
    daily = world.client.get(f"/v1/accounts/{OWN}/usage/daily", params={"month": "2026-03"}, headers=headers).json()
    csv_text = world.client.get(f"/v1/accounts/{OWN}/usage.csv", params={"month": "2026-03"}, headers=headers).text

    assert (status["accepted"], status["duplicates"], status["rejected"]) == (6, 1, 0)
    assert usage == {
        "account_id": OWN,
        "month": "2026-03",
        "connection_minutes": 3,
        "messages": 15,
        "messages_published": 3,
        "messages_delivered": 12,
        "bytes_out": 5_700,
        "services": [_service("svc_a", 2, 3, 12, 5_000), _service("svc_b", 1, 0, 0, 700)],
    }
    assert [(d["day"], d["service_id"], d["connection_minutes"]) for d in daily["days"]] == [
        ("2026-03-14", "svc_a", 1),
        ("2026-03-15", "svc_a", 1),
        ("2026-03-15", "svc_b", 1),
    ]
    assert csv_text.splitlines() == [
        "day,service_id,connection_minutes,messages_published,messages_delivered,bytes_out",
        "2026-03-14,svc_a,1,0,0,0",
        "2026-03-15,svc_a,1,3,12,5000",
        "2026-03-15,svc_b,1,0,0,700",
    ]


@pytest.mark.usefixtures("worker")
def test_bad_events_are_rejected_with_their_reasons_while_the_good_ones_count(
    world: World, ingest_headers: dict[str, str]
) -> None:
    good = published_event(utc_micros("2026-03-02T10:00:00Z"), 4, account=OWN, service="svc_a")
    status = _send_and_wait(world, ingest_headers, [good, {"specversion": "1.0", "id": "x"}, 42])

    assert (status["accepted"], status["rejected"]) == (1, 2)
    assert sum(status["rejection_reasons"].values()) == 2
    usage = world.client.get(f"/v1/accounts/{OWN}/usage?month=2026-03", headers=world.as_role("admin")).json()
    assert usage["messages_published"] == 4


@pytest.mark.usefixtures("worker")
def test_metrics_count_accepted_duplicate_and_rejected_events_and_open_connections(
    world: World, ingest_headers: dict[str, str]
) -> None:
    now = world.clock.now
    t = utc_micros(now.isoformat())
    events = [open_event(t - 30_000_000, account=OWN, service="svc_a", connection="live")]
    _send_and_wait(world, ingest_headers, [*events, *events, {"nope": True}])

    text = world.client.get("/metrics").text

    assert 'fanmeter_events_total{outcome="accepted"} 1.0' in text
    assert 'fanmeter_events_total{outcome="duplicate"} 1.0' in text
    assert 'fanmeter_events_total{outcome="rejected"} 1.0' in text
    assert "fanmeter_open_connections 1.0" in text
    assert "fanmeter_pipeline_lag_seconds 0.0" in text


def test_only_ingest_tokens_may_post_events(world: World) -> None:
    response = world.client.post("/v1/events", content="[]", headers={**world.as_role("admin"), "Content-Type": BATCH})

    assert response.status_code == 403
    assert response.json() == {"detail": "only an ingest token may send events"}


@pytest.mark.parametrize(
    ("body", "content_type", "status", "detail"),
    [
        ("{not json", BATCH, 400, "the body is not JSON"),
        ("[]", BATCH, 400, "the batch is empty"),
        ("[]", "text/plain", 415, "content type must be one of"),
        ("[" + "1," * (6 * 1024 * 1024) + "1]", BATCH, 413, "over the 10,485,760-byte limit"),
    ],
)
def test_bad_event_bodies_get_a_clear_error(
    world: World, ingest_headers: dict[str, str], body: str, content_type: str, status: int, detail: str
) -> None:
    response = world.client.post("/v1/events", content=body, headers={**ingest_headers, "Content-Type": content_type})

    assert response.status_code == status
    assert detail in response.json()["detail"]


def test_an_ingest_token_reads_nothing_else(world: World, ingest_headers: dict[str, str]) -> None:
    assert world.client.get(f"/v1/accounts/{OWN}/usage", headers=ingest_headers).status_code == 403


def test_usage_is_hidden_from_the_user_role_and_from_other_accounts(world: World) -> None:
    assert world.client.get(f"/v1/accounts/{OWN}/usage", headers=world.as_role("user")).status_code == 403
    assert world.client.get(f"/v1/accounts/{OTHER}/usage", headers=world.as_role("engineer")).status_code == 404
    assert world.client.get("/v1/accounts/acc_nobody/usage", headers=world.as_role("finance")).status_code == 404


def test_a_malformed_month_is_refused(world: World) -> None:
    response = world.client.get(f"/v1/accounts/{OWN}/usage?month=2026-13", headers=world.as_role("admin"))

    assert response.status_code == 400
    assert "month" in response.json()["detail"]


def test_usage_defaults_to_the_current_month_to_date(world: World) -> None:
    response = world.client.get(f"/v1/accounts/{OWN}/usage", headers=world.as_role("admin"))

    assert response.json()["month"] == "2026-03"
    assert response.json()["connection_minutes"] == 0
