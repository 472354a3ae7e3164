"""Helpers for broker metering tests: clients that count what they receive, and usage read from the pipeline."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import websockets
from gripcontrol import GripPubControl, HttpStreamFormat, WebSocketMessageFormat
from pubcontrol import Item
from sqlalchemy import text

from kernel.db import make_engine
from kernel.instants import Month
from metering import service as metering_service
from tests.e2e.broker_stack import TOKEN, BrokerNode
from tests.stack import run_cli, settings_for


def publish_round(broker: BrokerNode, channel: str, count: int, tag: str) -> None:
    """``count`` items, each with an http-stream and a ws-message format, through gripcontrol."""
    pub = GripPubControl({"control_uri": f"{broker.url}/service/svc-a", "key": TOKEN})
    for n in range(count):
        text = f"{tag}-{n}"
        pub.publish(channel, Item([HttpStreamFormat(f"{text}\n"), WebSocketMessageFormat(text)]), blocking=True)
    pub.close()


class StreamClient:
    """An httpx streaming client that counts the published lines it receives."""

    def __init__(self, client: httpx.AsyncClient, url: str, first: bytes = b"stream open\n") -> None:
        self._client, self._url, self._first = client, url, first
        self.lines: list[str] = []
        self.bytes = 0

    async def open(self, stack: AsyncExitStack) -> None:
        response = await stack.enter_async_context(self._client.stream("GET", self._url))
        self._chunks = response.aiter_raw()
        first = await anext(self._chunks)
        assert first == self._first
        self.bytes += len(first)
        self._buffer = b""

    async def receive_until_idle(self, idle_s: float = 2.0) -> None:
        """Read whatever the broker still has for this client; stop once nothing came for ``idle_s``."""
        while True:
            try:
                chunk = await asyncio.wait_for(anext(self._chunks), idle_s)
            except TimeoutError:
                return
            self._take(chunk)

    def _take(self, chunk: bytes) -> None:
        self.bytes += len(chunk)
        self._buffer += chunk
        *done, self._buffer = self._buffer.split(b"\n")
        self.lines += [line.decode() for line in done]

    async def receive(self, count: int) -> None:
        while len(self.lines) < count:
            self._take(await anext(self._chunks))

    async def receive_to_end(self, timeout_s: float = 15) -> None:
        """Read until the broker ends the response's body (a stream that does not end fails the wait)."""
        async with asyncio.timeout(timeout_s):
            async for chunk in self._chunks:
                self._take(chunk)


class SocketClient:
    """A websockets client that counts the published messages it receives."""

    def __init__(self, url: str) -> None:
        self._url = url
        self.messages: list[str] = []
        self.bytes = 0

    async def open(self, stack: AsyncExitStack) -> None:
        self._socket = await stack.enter_async_context(websockets.connect(self._url))
        assert await self._socket.recv() == "welcome"
        self.bytes += len(b"welcome")

    async def receive(self, count: int) -> None:
        while len(self.messages) < count:
            message = str(await self._socket.recv())
            self.messages.append(message)
            self.bytes += len(message.encode())


async def open_clients(
    stack: AsyncExitStack, broker: BrokerNode, channel: str, streams: int, sockets: int
) -> list[Any]:
    client = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
    ws_url = broker.url.replace("http://", "ws://") + f"/s/svc-a/ws?ch={channel}"
    clients: list[Any] = [StreamClient(client, f"{broker.url}/s/svc-a/stream?ch={channel}") for _ in range(streams)]
    clients += [SocketClient(ws_url) for _ in range(sockets)]
    for c in clients:  # in turn: each open returns once the broker holds the subscription
        await c.open(stack)
    return clients


async def receive_all(clients: list[Any], count: int) -> int:
    await asyncio.wait_for(asyncio.gather(*(c.receive(count) for c in clients)), timeout=30)
    return sum(len(c.lines) if isinstance(c, StreamClient) else len(c.messages) for c in clients)


def usage(env: dict[str, str], account: str) -> dict[str, int]:
    """The account's usage this month and last (a test may straddle a month boundary), through the metering service."""
    engine = make_engine(settings_for(env).resolved_database_url)
    now = datetime.now(UTC)
    months = {Month.of_day(now.date()), Month.of_day((now.replace(day=1) - timedelta(days=1)).date())}
    try:
        reports = [metering_service.usage_for_month(engine, account, m) for m in months]
    finally:
        engine.dispose()
    keys = ("connection_minutes", "messages_published", "messages_delivered", "bytes_out")
    return {k: sum(getattr(r, k) for r in reports) for k in keys}


def wait_for_usage(
    env: dict[str, str], account: str, expected: dict[str, int], timeout_s: float = 90
) -> dict[str, int]:
    """Poll the pipeline's usage until it shows ``expected`` (every key), or give up and return the last seen."""
    deadline = time.monotonic() + timeout_s
    seen = usage(env, account)
    while time.monotonic() < deadline and any(seen[k] != v for k, v in expected.items()):
        time.sleep(0.25)
        seen = usage(env, account)
    return seen


def usage_by_cli(env: dict[str, str], account: str) -> dict[str, Any]:
    month = datetime.now(UTC).strftime("%Y-%m")
    result = run_cli(env, "usage", account, month, "--format", "json")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def outbox_delivered(path: Path) -> int:
    """Deliveries recorded in a node's outbox file (read-only; the broker may be running)."""
    if not path.exists():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT coalesce(sum(json_extract(payload, '$.data.count')), 0) FROM outbox_event "
            "WHERE json_extract(payload, '$.type') = 'fanout.message.delivered'"
        ).fetchone()
    return int(rows[0])


def outbox_backlog(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT count(*) FROM outbox_event").fetchone()[0])


def close_reasons(env: dict[str, str], account: str) -> list[str]:
    """The reasons of the account's stored close events (what operators see in raw events)."""
    engine = make_engine(settings_for(env).resolved_database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT reason FROM raw_event WHERE account_id = :a AND reason IS NOT NULL"), {"a": account}
            )
            return [str(r[0]) for r in rows]
    finally:
        engine.dispose()


def session_rows(env: dict[str, str], account: str) -> list[tuple[int, int, bool, int, str]]:
    """(start_us, end_us, closed, billable_minutes, transport) of the account's connection sessions."""
    engine = make_engine(settings_for(env).resolved_database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT start_us, end_us, closed, billable_minutes, transport FROM connection_session "
                    "WHERE account_id = :a"
                ),
                {"a": account},
            )
            return [(int(r[0]), int(r[1]), bool(r[2]), int(r[3]), str(r[4])) for r in rows]
    finally:
        engine.dispose()
