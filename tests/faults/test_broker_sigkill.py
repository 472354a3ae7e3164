"""SIGKILL of a broker node with clients connected and publishes in flight.

The node is killed while six clients (HTTP streams and WebSockets) hold a channel and three
publishers send back to back; the publishers keep trying while it is down (connection refused),
and the node is restarted on the same port and outbox. Its clients reconnect: new connections.

No worker runs until the traffic is over, so nothing is acknowledged and the outbox file holds
every event both lives of the node wrote: that snapshot, read from the SQLite file, is the
"events sent" of the independent computation. Then a worker starts; the restarted node ships
what its outbox held (its dead predecessor's events and its own) and the outbox empties.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from kernel.instants import Month
from metering import service
from tests.e2e.broker_stack import BrokerNode, broker_node, grip_origin
from tests.faults.broker_traffic import (
    Publishers,
    connection_ids,
    outbox_count,
    outbox_events,
    outbox_file,
    published_items,
    single_service,
)
from tests.faults.harness import Outcome, compare, engine_for, start_worker
from tests.faults.soak import Client
from tests.stack import free_port

pytestmark = pytest.mark.faults

NODE = "sigkill"
FAULT = "SIGKILL of a broker node with clients held and publishes in flight"
KINDS = ("stream", "stream", "stream", "stream", "socket", "socket")


async def _connect(node: BrokerNode, http: httpx.AsyncClient, account: str) -> list[Client]:
    clients = [Client(account, kind, "svc-a") for kind in KINDS]
    for client in clients:
        await client.open(http, node.url, "fan")
    return clients


async def _until(condition: object, timeout_s: float, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def test_sigkill_of_a_broker_node_mid_traffic_ships_what_its_outbox_held_and_bills_reconnects_once_each(
    stack: dict[str, str], tmp_path: Path
) -> None:
    account = f"acct-{uuid.uuid4().hex[:8]}"
    env = {**stack, "FANMETER_ALIVE_INTERVAL_SECONDS": "1", "FANMETER_BROKER_SHIP_INTERVAL_MS": "100",
           "FANMETER_BROKER_RESEND_SECONDS": "2"}  # fmt: skip
    with grip_origin(tmp_path) as origin:
        config = single_service(tmp_path / "services.json", origin, account)
        run = asyncio.run(_kill_and_restart(env, config, free_port(), account))
    snapshot, publishers, outcome = run.snapshot, run.publishers, run.outcome
    outcome.record()
    billed_items = published_items(snapshot, account)
    billed = _delivered(snapshot, run.killed_at)
    print(f"publishes acked {publishers.acked}, unanswered {publishers.unanswered}, requests refused a "  # noqa: T201
          f"connection {publishers.unsent}; items billed {billed_items}; deliveries received {run.received}, "
          f"billed {billed}; events in the outbox at the kill {run.held_at_kill}")  # fmt: skip

    # What the outbox held covers every publish the node answered 200, and at most the unanswered ones more.
    assert publishers.acked <= billed_items <= publishers.acked + publishers.unanswered
    assert run.held_at_kill > 0  # the dead node left events unshipped, which its successor shipped
    # Every client connection is one connection, the reconnected ones new ones: 6 before, 6 after.
    assert len(connection_ids(snapshot, account)) == 2 * len(KINDS)
    assert outcome.events_billed == outcome.events_sent
    assert outcome.differences == [], outcome.differences[:20]
    # The kill loses the delivery counts not yet written (docs/decisions.md: the last flush interval,
    # more while the node lags), never adds any; after the restart every delivery is billed.
    assert billed[0] <= run.received[0]
    assert billed[1] == run.received[1]


def _delivered(events: list[dict[str, Any]], killed_at: datetime) -> tuple[int, int]:
    """Deliveries the outbox recorded before the kill, and after it (by the events' times)."""
    before = after = 0
    for event in events:
        if event["type"] == "fanout.message.delivered":
            at = datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
            count = int(event["data"]["count"])
            before, after = (before + count, after) if at <= killed_at else (before, after + count)
    return before, after


@dataclass
class _Run:
    snapshot: list[dict[str, Any]]
    publishers: Publishers
    received: tuple[int, int]  # deliveries the clients received before the kill, and after the restart
    held_at_kill: int
    outcome: Outcome
    killed_at: datetime


def _minutes(engine: Engine, account: str) -> int:
    return int(service.usage_for_month(engine, account, Month.of_day(datetime.now(UTC).date())).connection_minutes)


async def _kill_and_restart(env: dict[str, str], config: Path, port: int, account: str) -> _Run:
    outbox, engine = outbox_file(env, NODE), engine_for(env)
    async with httpx.AsyncClient(timeout=30) as http:
        with broker_node(env, config, NODE, port=port) as node:
            before = await _connect(node, http, account)
            publishers = Publishers(node.publish_url("svc-a"), "fan", threads=3).start()
            try:
                await _until(lambda: publishers.acked >= 100, 60, "publishes before the kill")
                await asyncio.sleep(1.5)  # the held connections' first alive reports (every 1 s) are written
                node.process.send_signal(signal.SIGKILL)
                node.process.wait()
                killed_at = datetime.now(UTC)
                unsent = publishers.unsent
                await _until(lambda: publishers.unsent >= unsent + 5, 30, "publishers to find the node gone")
                held_at_kill = outbox_count(outbox)
                for client in before:
                    await client.close()
                with broker_node(env, config, NODE, port=port) as restarted:
                    after = await _connect(restarted, http, account)  # the clients reconnect
                    acked = publishers.acked
                    await _until(lambda: publishers.acked >= acked + 100, 60, "publishes after the restart")
                    publishers.stop()
                    await asyncio.sleep(0.5)  # the last deliveries reach the clients
                    for client in after:
                        await client.close()
                    # The closes and the last delivery counts reach the outbox (flushed every 200 ms).
                    await _until(lambda: _closes(outbox) == len(after), 30, "the closes in the outbox")
                    await asyncio.sleep(0.5)
                    snapshot = outbox_events(outbox)
                    worker = start_worker(env)  # now the restarted node's shipper is acknowledged
                    try:
                        await _until(lambda: outbox_count(outbox) == 0, 120, "the restarted node to ship its outbox")
                        minutes = 2 * len(KINDS)  # each connection lived under a minute: one minute each
                        await _until(lambda: _minutes(engine, account) == minutes, 60, "the rollup")
                        outcome = compare(engine, FAULT, 1, snapshot)
                    finally:
                        worker.stop()
            finally:
                publishers.stop()
    received = (sum(c.received for c in before), sum(c.received for c in after))
    return _Run(snapshot, publishers, received, held_at_kill, outcome, killed_at)


def _closes(outbox: Path) -> int:
    return sum(1 for e in outbox_events(outbox) if e["type"] == "fanout.connection.close")
