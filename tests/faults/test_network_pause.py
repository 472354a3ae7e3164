"""A network pause between a broker node and the pipeline, long enough for its outbox to pass 100,000 events.

The node reaches PostgreSQL and RabbitMQ only through pausable TCP proxies (tests/faults/
pausable_proxy.py: the shared servers are never touched); the worker reaches them directly.
Traffic: six clients held on a channel with a publisher on it, and two publishers of 2,000-item
requests on another. The proxies are paused: the shipper hangs mid-call, the outbox grows past
100,000 events to its cap (FANMETER_BROKER_OUTBOX_MAX_EVENTS), and from there new held
connections (HTTP and WebSocket) and publishes get 503 with Retry-After while the held clients
go on; the depth stays under the cap plus what was already admitted, and /metrics shows it all.
The proxies resume: the outbox drains, the broker admits again, and the usage equals the
independent computation over the stored events, which hold every publish answered 200, every
delivery the clients received and every connection admitted, once.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.e2e.broker_stack import BrokerNode, broker_node, grip_origin
from tests.faults.broker_traffic import (
    Publishers,
    closed_sessions,
    connection_ids,
    metric,
    outbox_count,
    outbox_file,
    published_items,
    refused_attempts,
    settled,
    single_service,
    stored_events,
    until,
)
from tests.faults.harness import FIGURES, compare, engine_for, start_worker, wait_until
from tests.faults.pausable_proxy import pausable_proxy
from tests.faults.soak import Client
from tests.stack import free_port

pytestmark = pytest.mark.faults

NODE = "paused"
GROWTH = 100_000  # what the issue asks the outbox to reach during the pause
CAP = 105_000
LOAD_ITEMS, LOAD_THREADS = 2000, 2
KINDS = ("stream", "stream", "stream", "stream", "socket", "socket")
FAULT = "network pause between a broker node and the pipeline (outbox past 100,000 events, to its cap)"


def test_a_network_pause_grows_the_outbox_to_its_cap_refuses_new_work_with_503_and_drains_afterwards(
    stack: dict[str, str], tmp_path: Path
) -> None:
    account = f"acct-{uuid.uuid4().hex[:8]}"
    engine = engine_for(stack)
    metrics_port = free_port()
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    database = make_url(stack["FANMETER_DATABASE_URL"])
    amqp = make_url(stack["FANMETER_CELERY_BROKER_URL"].replace("amqp://", "postgresql://"))  # only to parse it
    with (
        pausable_proxy(database.port or 5432) as pg,
        pausable_proxy(amqp.port or 5672) as mq,
        grip_origin(tmp_path) as origin,
    ):
        node_env = {
            **stack,
            "FANMETER_DATABASE_URL": database.set(port=pg.port).render_as_string(hide_password=False),
            "FANMETER_CELERY_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{mq.port}//",
            "FANMETER_BROKER_OUTBOX_MAX_EVENTS": str(CAP),
            "FANMETER_BROKER_METRICS_PORT": str(metrics_port),
            "FANMETER_ALIVE_INTERVAL_SECONDS": "5",
            "FANMETER_BROKER_RESEND_SECONDS": "30",
        }
        config = single_service(tmp_path / "services.json", origin, account)
        worker = start_worker(stack)
        try:
            with broker_node(node_env, config, NODE) as node:
                figures = asyncio.run(_pause(node, node_env, metrics_url, account, (pg, mq)))
                wait_until(lambda: outbox_count(outbox_file(node_env, NODE)) == 0, 180, "the outbox to drain", 0.5)
            expected = figures["admitted_connections"]
            wait_until(lambda: closed_sessions(engine, account) == expected, 60, "the rollup", poll_s=0.5)
            events = stored_events(engine, account)
            outcome = compare(engine, FAULT, 1, events)
        finally:
            worker.stop()
    outcome.record()
    figures |= {"events_stored": len(events), "published_stored": published_items(events, account)}
    with FIGURES.open("a") as out:
        out.write(json.dumps({"fault": FAULT, "figures": figures}) + "\n")
    print(json.dumps(figures))  # noqa: T201

    assert figures["largest_depth"] >= GROWTH
    # Bounded: past the cap only what was admitted just before it (one request per load publisher,
    # the fan publisher's item) and the held clients' reports.
    assert figures["largest_depth"] <= CAP + LOAD_THREADS * LOAD_ITEMS + 100
    assert figures["metrics_depth"] >= GROWTH and figures["metrics_cap"] == CAP
    assert figures["metrics_refusals"] >= figures["refused_connections"] + 1
    assert figures["refused_connections"] == 2  # one HTTP stream, one WebSocket, both answered 503
    assert figures["publish_refusals"] > 0 and figures["refusal_texts"] == ["cap"]
    assert figures["drain_s"] < 180
    # Everything answered 200 is billed, every delivery received, every admitted connection once.
    assert figures["published_stored"] == figures["acked_items"]
    delivered = sum(e["data"]["count"] for e in events if e["type"] == "fanout.message.delivered")
    assert delivered == figures["received"]
    assert len(connection_ids(events, account)) == figures["admitted_connections"]
    assert outcome.events_billed == outcome.events_sent
    assert outcome.differences == [], outcome.differences[:20]


async def _pause(node: BrokerNode, env: dict[str, str], metrics_url: str, account: str,
                 proxies: tuple[object, ...]) -> dict[str, object]:  # fmt: skip
    outbox = outbox_file(env, NODE)
    clients: list[Client] = []
    async with httpx.AsyncClient(timeout=30) as http:
        for kind in KINDS:
            client = Client(account, kind, "svc-a")
            await client.open(http, node.url, "fan")
            clients.append(client)
        fan = Publishers(node.publish_url("svc-a"), "fan", threads=1, pause_s=0.05).start()
        load = Publishers(node.publish_url("svc-a"), "load", LOAD_ITEMS, LOAD_THREADS).start()
        try:
            await until(lambda: fan.acked >= 20, 30, "traffic before the pause")
            for proxy in proxies:
                proxy.pause()  # type: ignore[attr-defined]
            paused_at = time.monotonic()
            largest = 0

            def depth() -> int:
                nonlocal largest
                largest = max(largest, outbox_count(outbox))
                return largest

            await until(lambda: depth() >= GROWTH and 503 in load.refused, 240, "the outbox to reach its cap")
            grown_s = time.monotonic() - paused_at
            refusals = await refused_attempts(node, http)
            await asyncio.sleep(2)  # held clients and publishers go on; the depth must stay bounded
            depth()
            metrics = await asyncio.to_thread(_metrics, metrics_url)
            load.stop()  # the load was the fault's; the held clients and their publisher go on
            for proxy in proxies:
                proxy.resume()  # type: ignore[attr-defined]
            resumed_at = time.monotonic()
            await until(lambda: outbox_count(outbox) < 1000, 180, "the outbox to drain")
            drain_s = time.monotonic() - resumed_at
            late = Client(account, "stream", "svc-a")  # admitted again
            await late.open(http, node.url, "fan")
            clients.append(late)
            published_before_late = fan.acked
            await until(lambda: fan.acked >= published_before_late + 20, 30, "publishes after the pause")
        finally:
            fan.stop()
            load.stop()
        total = fan.acked
        for client in clients[:-1]:  # held since before the first publish: every item
            await until(lambda c=client: c.received >= total, 30, "the held clients to get every item")  # type: ignore[misc]
        await until(lambda: late.received >= total - published_before_late, 30, "the new client's items")
        await settled(clients)  # an item in flight while the new client opened may still come
        for client in clients:
            await client.close()
    statuses = [status for status, _, _ in refusals]
    return {
        "pause_s": round(resumed_at - paused_at, 1),
        "growth_s": round(grown_s, 1),
        "largest_depth": largest,
        "drain_s": round(drain_s, 1),
        "acked_items": fan.acked + load.acked,
        "publish_refusals": fan.refused.get(503, 0) + load.refused.get(503, 0),
        "refusal_texts": sorted({"cap" for t in fan.refusal_texts | load.refusal_texts if "the cap is" in t}),
        "refused_connections": statuses.count(503),
        "refusal_retry_after": sorted({retry for _, retry, _ in refusals}),
        "received": sum(c.received for c in clients),
        "admitted_connections": len(clients),
        **metrics,
    }


def _metrics(url: str) -> dict[str, float]:
    return {
        "metrics_depth": metric(url, "fanmeter_outbox_events"),
        "metrics_oldest_age_s": metric(url, "fanmeter_outbox_oldest_event_age_seconds"),
        "metrics_cap": metric(url, "fanmeter_outbox_max_events"),
        "metrics_refusals": metric(url, "fanmeter_outbox_refusals_total", reason="outbox_full"),
    }
