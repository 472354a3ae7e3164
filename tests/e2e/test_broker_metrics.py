"""The broker's ``GET /metrics``: a real `fanmeter broker` over real sockets, its output read with
prometheus_client's own parser, and every figure checked against what the clients and the outbox saw.

The node ships nothing (``FANMETER_BROKER_SHIP=false``), so its outbox holds every event it wrote:
the close events' reasons and the outbox depth are there to compare with. Its queue holds 5 deliveries
per connection, so a client that stops reading becomes a slow consumer quickly.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from broker.settings import BrokerSettings
from tests.e2e.broker_metering import outbox_backlog
from tests.e2e.broker_stack import TOKEN, BrokerNode, broker_node, services_file
from tests.stack import free_port, run_cli

pytestmark = pytest.mark.anyio

NODE = "metrics-e2e"
CONNECTED = "fanmeter_connection_connected"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass(frozen=True)
class MetricsNode:
    node: BrokerNode
    metrics_url: str
    outbox: Path
    started_at: datetime


@pytest.fixture(scope="module")
def metered(origin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetricsNode]:
    data_dir = tmp_path_factory.mktemp("metrics-node")
    config = services_file(data_dir / "services.json", origin_url)
    metrics_port = free_port()
    env = {"FANMETER_DATA_DIR": str(data_dir)}
    extra = {"FANMETER_BROKER_SHIP": "false", "FANMETER_BROKER_QUEUE_SIZE": "5"}
    started_at = datetime.now(UTC)
    with broker_node(env, config, NODE, {**extra, "FANMETER_BROKER_METRICS_PORT": str(metrics_port)}) as node:
        outbox = BrokerSettings(data_dir=data_dir, broker_node=NODE).outbox_path
        yield MetricsNode(node, f"http://127.0.0.1:{metrics_port}/metrics", outbox, started_at)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def scrape(http: httpx.AsyncClient, metered: MetricsNode) -> Samples:
    """Every sample of the broker's /metrics, parsed by prometheus_client, by (name, sorted labels)."""
    response = await http.get(metered.metrics_url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 for a series not shown yet (a counter nobody bumped)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def per_transport(samples: Samples, name: str) -> dict[str, float]:
    transports = ("sse", "http-stream", "long-poll", "websocket")
    return {t: value(samples, name, transport=t, service="svc-a") for t in transports}


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in after}


async def until(http: httpx.AsyncClient, metered: MetricsNode, ready: Callable[[Samples], bool],
                timeout_s: float = 15) -> Samples:  # fmt: skip
    """Scrape until ``ready`` holds (the broker counts a delivery just after the client's write returns)."""
    deadline = time.monotonic() + timeout_s
    samples = await scrape(http, metered)
    while not ready(samples) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        samples = await scrape(http, metered)
    return samples


class Client:
    """A held client of any transport that keeps what it received: messages and payload bytes."""

    def __init__(self, transport: str, first: bytes | str, bytes_in: int) -> None:
        self.transport = transport
        self.bytes = len(first.encode() if isinstance(first, str) else first)
        self.bytes_in = bytes_in
        self.messages: list[bytes] = []
        self.receive: Callable[[], Awaitable[None]]


async def open_stream(stack: AsyncExitStack, http: httpx.AsyncClient, url: str, transport: str) -> Client:
    response = await stack.enter_async_context(http.stream("GET", url))
    chunks = response.aiter_raw()
    client = Client(transport, await anext(chunks), 0)

    async def receive() -> None:
        chunk = await anext(chunks)
        client.bytes += len(chunk)
        client.messages.append(chunk)

    client.receive = receive
    return client


async def open_socket(stack: AsyncExitStack, url: str) -> tuple[Client, websockets.ClientConnection]:
    socket = await stack.enter_async_context(websockets.connect(url))
    client = Client("websocket", str(await socket.recv()), 0)

    async def receive() -> None:
        message = await socket.recv()
        client.bytes += len(message.encode() if isinstance(message, str) else message)
        client.messages.append(message.encode() if isinstance(message, str) else message)

    client.receive = receive
    return client, socket


async def publish(http: httpx.AsyncClient, node: BrokerNode, channel: str, text: str, every: bool = True) -> None:
    """One item with a format for every transport (a long-poll takes the http-response), or for streams only."""
    formats: dict[str, dict[str, str]] = {"http-stream": {"content": f"{text}\n"}}
    if every:
        formats |= {"ws-message": {"content": text}, "http-response": {"body": f"{text}\n"}}
    response = await http.post(node.publish_url(), json={"items": [{"channel": channel, "formats": formats}]},
                               headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
    assert response.status_code == 200, response.text


async def open_every_transport(stack: AsyncExitStack, http: httpx.AsyncClient, node: BrokerNode,
                               channel: str) -> tuple[list[Client], asyncio.Task[httpx.Response]]:  # fmt: skip
    """2 SSE, 2 HTTP streams and 2 WebSockets held on ``channel``, and a long-poll on it being held."""
    base = f"{node.url}/s/svc-a"
    clients = [await open_stream(stack, http, f"{base}/sse?ch={channel}", "sse") for _ in range(2)]
    clients += [await open_stream(stack, http, f"{base}/stream?ch={channel}", "http-stream") for _ in range(2)]
    ws_url = base.replace("http://", "ws://") + f"/ws?ch={channel}"
    clients += [(await open_socket(stack, ws_url))[0] for _ in range(2)]
    poll = asyncio.ensure_future(http.get(f"{base}/poll?ch={channel}&timeout=55"))
    return clients, poll


async def test_open_connections_per_transport_go_up_and_back_down_and_each_counts_an_open_a_minute_and_its_bytes(
    metered: MetricsNode, http: httpx.AsyncClient
) -> None:
    before = await scrape(http, metered)
    async with AsyncExitStack() as stack:
        clients, poll = await open_every_transport(stack, http, metered.node, "up-down")
        held = await until(http, metered, lambda s: per_transport(s, CONNECTED)["long-poll"] == 1)
        assert per_transport(held, "fanmeter_connection_connected") == {
            "sse": 2, "http-stream": 2, "long-poll": 1, "websocket": 2,
        }  # fmt: skip
        await publish(http, metered.node, "up-down", "one")
        answer = await poll
        for client in clients:
            await client.receive()
        polled = await until(http, metered, lambda s: per_transport(s, CONNECTED)["long-poll"] == 0)
        assert per_transport(polled, "fanmeter_connection_connected")["sse"] == 2
    after = await until(http, metered, lambda s: sum(per_transport(s, CONNECTED).values()) == 0)
    opened = {"sse": 2, "http-stream": 2, "long-poll": 1, "websocket": 2}
    assert per_transport(after, "fanmeter_connection_connected") == dict.fromkeys(opened, 0)
    assert delta(per_transport(after, "fanmeter_connection_opened_total"),
                 per_transport(before, "fanmeter_connection_opened_total")) == opened  # fmt: skip
    # Each connection lasted well under a minute: one minute begun each, as the pipeline bills it.
    assert delta(per_transport(after, "fanmeter_connection_minute_total"),
                 per_transport(before, "fanmeter_connection_minute_total")) == opened  # fmt: skip
    received = {t: sum(c.bytes for c in clients if c.transport == t) for t in opened}
    received["long-poll"] = len(answer.content)
    assert answer.content == b"one\n"
    assert delta(per_transport(after, "fanmeter_client_content_bytes_sent_total"),
                 per_transport(before, "fanmeter_client_content_bytes_sent_total")) == received  # fmt: skip


async def test_messages_sent_are_the_deliveries_clients_received_and_publish_answers_are_counted_by_status(
    metered: MetricsNode, http: httpx.AsyncClient
) -> None:
    before = await scrape(http, metered)
    async with AsyncExitStack() as stack:
        clients, poll = await open_every_transport(stack, http, metered.node, "sent")
        await until(http, metered, lambda s: per_transport(s, CONNECTED)["long-poll"] == 1)
        for n in range(3):
            await publish(http, metered.node, "sent", f"item-{n}")
        for client in clients:
            for _ in range(3):
                await client.receive()
        await poll
        received = sum(len(c.messages) for c in clients) + 1  # the long-poll's answer
        expected_sent = value(before, "fanmeter_message_sent_total", service="svc-a") + received
        after = await until(http, metered, lambda s: value(s, "fanmeter_message_sent_total", service="svc-a")
                            == expected_sent)  # fmt: skip
    assert received == 6 * 3 + 1
    assert value(after, "fanmeter_message_sent_total", service="svc-a") == expected_sent
    assert (
        value(after, "fanmeter_message_received_total", service="svc-a")
        == value(before, "fanmeter_message_received_total", service="svc-a") + 3
    )
    publish_url = metered.node.publish_url()
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    refusals = [
        await http.post(publish_url, content=b"{not json", headers=bearer),
        await http.post(publish_url, json={"items": []}, headers={"Authorization": "Bearer wrong"}),
        await http.post(publish_url, json={"items": []}),
        await http.post(metered.node.publish_url("svc-unknown"), json={"items": []}, headers=bearer),
    ]
    assert [r.status_code for r in refusals] == [400, 403, 401, 404]
    answered = await scrape(http, metered)
    codes = ("200", "400", "401", "403", "404")
    counted = {c: value(answered, "fanmeter_publish_requests_total", code=c) for c in codes}
    counted_before = {c: value(before, "fanmeter_publish_requests_total", code=c) for c in codes}
    assert delta(counted, counted_before) == {"200": 3, "400": 1, "401": 1, "403": 1, "404": 1}
    assert value(answered, "fanmeter_message_received_total", service="svc-a") == value(
        after, "fanmeter_message_received_total", service="svc-a"
    )  # refused publishes received nothing


async def test_deliveries_dropped_for_a_client_that_stops_reading_are_counted_as_its_close_event_says(
    metered: MetricsNode, http: httpx.AsyncClient
) -> None:
    before = await scrape(http, metered)
    dropped_before = value(before, "fanmeter_message_dropped_total", transport="http-stream", service="svc-a")
    reader, writer = await asyncio.open_connection("127.0.0.1", metered.node.port)
    writer.write(b"GET /s/svc-a/stream?ch=slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await writer.drain()
    await reader.readuntil(b"stream open\n")  # held; from here on it reads nothing
    big = "x" * 900_000
    try:
        for n in range(40):  # 36 MB: more than the loopback socket buffers hold, then the queue of 5 fills
            await publish(http, metered.node, "slow", f"{n}-{big}", every=False)
        live = await scrape(http, metered)
    finally:
        writer.close()
    dropped_live = value(live, "fanmeter_message_dropped_total", transport="http-stream", service="svc-a")
    assert dropped_live - dropped_before > 0
    closed_reasons = await _until_closed(metered.outbox, "slow consumer")
    after = await scrape(http, metered)
    dropped = value(after, "fanmeter_message_dropped_total", transport="http-stream", service="svc-a")
    assert dropped == dropped_live  # the open connection's drops carry over into the closed ones'
    assert [int(re.search(r"(\d+) deliveries dropped", r).group(1)) for r in closed_reasons] == [  # type: ignore[union-attr]
        int(dropped - dropped_before)
    ]


async def _until_closed(outbox: Path, marker: str, timeout_s: float = 15) -> list[str]:
    """The reasons of the close events in the outbox file that mention ``marker``, once there is one."""
    deadline = time.monotonic() + timeout_s
    while True:
        with sqlite3.connect(f"file:{outbox}?mode=ro", uri=True) as db:
            payloads = [json.loads(p) for (p,) in db.execute("SELECT payload FROM outbox_event")]
        reasons = [p["data"].get("reason", "") for p in payloads if p["type"] == "fanout.connection.close"]
        found = [r for r in reasons if marker in r]
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


async def test_outbox_depth_is_the_events_the_outbox_file_holds_and_the_oldest_ones_age_is_since_the_node_began(
    metered: MetricsNode, http: httpx.AsyncClient
) -> None:
    await publish(http, metered.node, "outbox", "one")  # at least one event, whatever ran before
    samples = await until(http, metered, lambda s: value(s, "fanmeter_outbox_events") == outbox_backlog(metered.outbox))
    depth = value(samples, "fanmeter_outbox_events")
    assert depth == outbox_backlog(metered.outbox) >= 1
    age = value(samples, "fanmeter_outbox_oldest_event_age_seconds")
    assert 0 < age <= (datetime.now(UTC) - metered.started_at).total_seconds()


async def test_origin_latency_counts_every_origin_request_in_its_buckets(
    metered: MetricsNode, http: httpx.AsyncClient
) -> None:
    """3 streams ask the origin once each; a WebSocket asks it at OPEN, for its one message and at CLOSE."""
    name = "fanmeter_origin_request_duration_seconds"
    before = await scrape(http, metered)
    async with AsyncExitStack() as stack:
        for _ in range(3):
            await open_stream(stack, http, f"{metered.node.url}/s/svc-a/stream?ch=latency", "http-stream")
        ws_url = metered.node.url.replace("http://", "ws://") + "/s/svc-a/ws?ch=latency"
        _client, socket = await open_socket(stack, ws_url)
        await socket.send("hello")
        assert await socket.recv() == "echo:hello"
    count_before = value(before, f"{name}_count", service="svc-a")
    after = await until(http, metered, lambda s: value(s, f"{name}_count", service="svc-a") == count_before + 6)
    assert value(after, f"{name}_count", service="svc-a") == count_before + 6
    assert value(after, f"{name}_sum", service="svc-a") > value(before, f"{name}_sum", service="svc-a")
    buckets = sorted((float(dict(labels)["le"]), v) for (n, labels), v in after.items() if n == f"{name}_bucket")
    assert buckets[-1] == (float("inf"), count_before + 6)
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative


async def test_metrics_are_only_on_their_own_listener_which_serves_nothing_else(
    metered: MetricsNode, http: httpx.AsyncClient
) -> None:
    on_client_port = await http.get(f"{metered.node.url}/metrics")
    assert on_client_port.status_code == 404
    assert "fanmeter_" not in on_client_port.text
    base = metered.metrics_url.removesuffix("/metrics")
    assert (await http.get(f"{base}/s/svc-a/stream?ch=x")).status_code == 404
    assert (await http.post(metered.metrics_url, content=b"")).status_code == 405


def test_a_metrics_port_that_is_the_client_port_is_refused_at_start_up(tmp_path: Path) -> None:
    config = services_file(tmp_path / "services.json", "http://127.0.0.1:9")
    port = str(free_port())
    result = run_cli({"FANMETER_DATA_DIR": str(tmp_path)}, "broker", "--config", str(config), "--port", port,
                     "--metrics-port", port, timeout=60)  # fmt: skip
    assert result.returncode != 0
    assert f"the metrics port cannot be the client port ({port})" in result.stderr
    assert "Traceback" not in result.stderr
