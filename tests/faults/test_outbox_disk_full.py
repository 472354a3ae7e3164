"""A full disk under a broker's outbox: new held connections get a clear 503, never unmetered service.

The node's data directory (its outbox) is a 4 MB tmpfs mounted for the test (tests/faults/
full_disk.py; the process's file-size limit where mounting is refused). Six clients are held on
a channel with publishers on it; the file system is filled to its last byte while they run.
From the first failed outbox write: publishes, new HTTP streams and new WebSocket handshakes get
503 with Retry-After and a reason, the held clients stay connected, and the events of work
already done (deliveries, closes, alive reports) wait in the broker and are retried. The filler
is deleted: the broker admits again within a second or so, everything waiting is written, and
the usage equals the independent computation over the stored events, which hold every publish
answered 200, every delivery received and every admitted connection, once.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import httpx
import pytest

from broker.settings import BrokerSettings
from tests.e2e.broker_stack import BrokerNode, broker_node, grip_origin
from tests.faults.broker_traffic import (
    Publishers,
    closed_sessions,
    connection_ids,
    metric,
    outbox_count,
    published_items,
    refused_attempts,
    settled,
    single_service,
    stored_events,
    until,
)
from tests.faults.full_disk import FileSizeLimit, TmpfsDisk, small_disk
from tests.faults.harness import FIGURES, compare, engine_for, start_worker, wait_until
from tests.faults.soak import Client
from tests.stack import free_port

pytestmark = pytest.mark.faults

NODE = "diskfull"
KINDS = ("stream", "stream", "stream", "stream", "socket", "socket")
FAULT = "full disk under a broker node's outbox (tmpfs filled to its last byte), then freed"


def test_a_full_disk_under_the_outbox_refuses_new_held_connections_with_503_and_recovers_when_space_returns(
    stack: dict[str, str], tmp_path: Path
) -> None:
    account = f"acct-{uuid.uuid4().hex[:8]}"
    engine = engine_for(stack)
    metrics_port = free_port()
    with small_disk(tmp_path / "outbox-disk") as disk, grip_origin(tmp_path) as origin:
        config = single_service(tmp_path / "services.json", origin, account)
        # The node's data directory is the small disk; its log stays in the stack's own directory.
        extra = {"FANMETER_DATA_DIR": str(disk.path), "FANMETER_BROKER_METRICS_PORT": str(metrics_port),
                 "FANMETER_ALIVE_INTERVAL_SECONDS": "2"}  # fmt: skip
        outbox = BrokerSettings(data_dir=disk.path, broker_node=NODE).outbox_path
        worker = start_worker(stack)
        try:
            with broker_node(stack, config, NODE, extra) as node:
                figures = asyncio.run(_fill_and_free(node, disk, f"http://127.0.0.1:{metrics_port}/metrics", account))
                wait_until(lambda: outbox_count(outbox) == 0, 120, "the outbox to drain", poll_s=0.2)
            admitted = figures["admitted_connections"]
            wait_until(lambda: closed_sessions(engine, account) == admitted, 60, "the rollup", poll_s=0.5)
            events = stored_events(engine, account)
            outcome = compare(engine, FAULT, 1, events)
        finally:
            worker.stop()
    outcome.record()
    figures |= {"disk": disk.kind, "events_stored": len(events), "published_stored": published_items(events, account)}
    with FIGURES.open("a") as out:
        out.write(json.dumps({"fault": FAULT, "figures": figures}) + "\n")
    print(json.dumps(figures))  # noqa: T201

    assert figures["refusals"] == [(503, "5", True), (503, "5", True)]  # a stream and a WebSocket, with the reason
    assert figures["publish_refusals"] > 0 and figures["publish_refusal_reason"]
    assert figures["metrics_write_refusals"] >= 2
    assert figures["held_clients_connected"] == len(KINDS)
    assert figures["recovery_s"] < 10
    # Everything answered 200 is billed, every delivery received, every admitted connection once.
    assert figures["published_stored"] == figures["acked_items"]
    delivered = sum(e["data"]["count"] for e in events if e["type"] == "fanout.message.delivered")
    assert delivered == figures["received"]
    by_connection: dict[str, list[str]] = {}
    for e in sorted(events, key=lambda e: e["time"]):
        if "connection_id" in e["data"]:
            by_connection.setdefault(e["data"]["connection_id"], []).append(f"{e['type'][18:]}@{e['time'][11:23]}")
    assert len(connection_ids(events, account)) == admitted, json.dumps(by_connection)  # none refused is billed
    assert outcome.events_billed == outcome.events_sent
    assert outcome.differences == [], outcome.differences[:20]


async def _fill_and_free(node: BrokerNode, disk: TmpfsDisk | FileSizeLimit, metrics_url: str,
                         account: str) -> dict[str, object]:  # fmt: skip
    clients: list[Client] = []
    async with httpx.AsyncClient(timeout=30) as http:
        for kind in KINDS:
            client = Client(account, kind, "svc-a")
            await client.open(http, node.url, "fan")
            clients.append(client)
        fan = Publishers(node.publish_url("svc-a"), "fan", threads=1, pause_s=0.02).start()
        load = Publishers(node.publish_url("svc-a"), "load", 200, threads=1, pause_s=0.02)
        try:
            await until(lambda: fan.acked >= 20, 30, "traffic before the disk fills")
            filled = disk.fill(node.process.pid)
            filled_at = time.monotonic()
            # SQLite reuses the room its files already have; the outbox must grow to meet the full disk.
            load.start()
            await until(lambda: 503 in fan.refused or 503 in load.refused, 60, "the first failed outbox write")
            refused_after_s = time.monotonic() - filled_at
            load.stop()  # the load was the fault's; the held clients and their publisher go on
            refusals = await refused_attempts(node, http)
            await asyncio.sleep(1)  # the held clients and the publishers go on against the full disk
            connected = sum(1 for c in clients if c.connected)
            write_refusals = await asyncio.to_thread(
                metric, metrics_url, "fanmeter_outbox_refusals_total", reason="outbox_write_failed"
            )
            disk.free(node.process.pid)
            freed_at = time.monotonic()
            clients.append(await _admitted(node, http, account))
            recovery_s = time.monotonic() - freed_at
            acked = fan.acked
            await until(lambda: fan.acked >= acked + 20, 30, f"publishes after the disk freed ({fan}, {load})")
        finally:
            fan.stop()
            load.stop()
        await settled(clients)
        for client in clients:
            await client.close()
    texts = fan.refusal_texts | load.refusal_texts
    return {
        "filler_bytes": filled,
        "refused_after_s": round(refused_after_s, 2),
        "recovery_s": round(recovery_s, 2),
        "refusals": [(status, retry, "cannot be written" in body) for status, retry, body in refusals],
        "publish_refusals": fan.refused.get(503, 0) + load.refused.get(503, 0),
        "publish_refusal_reason": bool(texts) and all("cannot be written" in t for t in texts),
        "metrics_write_refusals": write_refusals,
        "held_clients_connected": connected,
        "acked_items": fan.acked + load.acked,
        "received": sum(c.received for c in clients),
        "admitted_connections": len(clients),
    }


async def _admitted(node: BrokerNode, http: httpx.AsyncClient, account: str, timeout_s: float = 30) -> Client:
    """A new stream, tried until the broker admits it again (503 meanwhile)."""
    deadline = time.monotonic() + timeout_s
    while True:
        client = Client(account, "stream", "svc-a")
        try:
            await client.open(http, node.url, "fan")
            return client
        except httpx.HTTPStatusError as refused:
            await client.close()
            assert refused.response.status_code == 503
            assert time.monotonic() < deadline, "the broker did not admit again once the disk had room"
            await asyncio.sleep(0.1)
