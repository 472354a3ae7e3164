"""The outbox's cap and failed writes: new work is refused (never metered half-way), work already done is kept.

On a real SQLite outbox file. A failing disk is played by a store whose appends fail while a
flag is set: the real full disk (a small tmpfs) is the faults tier's test
(tests/faults/test_outbox_disk_full.py); here the writer's rules are checked in milliseconds.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from pathlib import Path

import pytest

from broker.grip.publish import parse_publish_body
from broker.services.model import ServiceConfig
from broker.transports.connection import Connection
from broker.usage.admission import MeteringRefused
from broker.usage.events import Subject
from broker.usage.meter import Meter
from broker.usage.outbox import OutboxStore, OutboxWriter

SERVICE = ServiceConfig("svc-1", "acct-1", "http://127.0.0.1:9", ("token",), "grip-key", True)


class FailingStore(OutboxStore):
    """A real outbox whose appends fail while ``full`` is set, as SQLite fails on a full disk."""

    full = False

    def append(self, payloads: list[str]) -> None:
        if self.full:
            raise sqlite3.OperationalError("database or disk is full")
        super().append(payloads)


def connection() -> Connection:
    return Connection(uuid.uuid4().hex, SERVICE, "http-stream", 10)


def types(store: OutboxStore) -> list[str]:
    rows = store._db.execute("SELECT payload FROM outbox_event ORDER BY seq").fetchall()
    return [json.loads(p)["type"].removeprefix("fanout.") for (p,) in rows]


async def _started(store: OutboxStore, cap: int) -> tuple[OutboxWriter, Meter]:
    writer = OutboxWriter(store, max_events=cap, recount_s=0.05, retry_s=0.02)
    writer.start()
    await asyncio.sleep(0.01)
    return writer, Meter(writer, "node-1")


def test_at_the_cap_new_connections_and_publishes_are_refused_and_admitted_again_once_the_outbox_drains(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        store = OutboxStore(tmp_path / "o.sqlite")
        writer, meter = await _started(store, cap=3)
        first, second = connection(), connection()
        await meter.opened(first)
        await meter.opened(second)
        await meter.published(Subject("acct-1", "svc-1"), ())  # no items: nothing written, still admitted
        items = parse_publish_body(b'{"items": [{"channel": "c", "formats": {"http-stream": {"content": "x"}}}]}')
        await meter.published(Subject("acct-1", "svc-1"), items)
        assert writer.admission.depth == 3
        third = connection()
        with pytest.raises(MeteringRefused) as refused:
            await meter.opened(third)
        assert refused.value.reason == "outbox_full"
        assert "cap is 3" in str(refused.value)
        with pytest.raises(MeteringRefused):
            await meter.published(Subject("acct-1", "svc-1"), items)
        assert third.id not in meter.open
        meter.closed(first, "client disconnected")  # work already done is still written past the cap
        await writer.flush()
        assert types(store) == ["connection.open", "connection.open", "message.published", "connection.close"]
        assert writer.admission.refused == {"outbox_full": 2, "outbox_write_failed": 0}

        store._db.execute("DELETE FROM outbox_event")  # what the shipper does once the pipeline recorded them
        await asyncio.sleep(0.2)  # the writer recounts every recount_s
        await meter.opened(third)
        assert writer.admission.depth == 1
        await writer.stop()

    asyncio.run(scenario())


def test_a_failed_write_refuses_the_new_work_keeps_the_work_done_and_recovers_when_writes_succeed(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        store = FailingStore(tmp_path / "o.sqlite")
        writer, meter = await _started(store, cap=1000)
        held = connection()
        await meter.opened(held)
        store.full = True
        meter.closed(held, "client disconnected")  # the close must survive the full disk
        refused_conn = connection()
        opening = asyncio.ensure_future(meter.opened(refused_conn))
        await asyncio.sleep(0)  # its write is queued, not done: no alive report may name it meanwhile
        assert meter.alive_events() == []  # the held one is closed; the one opening is not open yet
        with pytest.raises(MeteringRefused) as refused:
            await opening
        assert refused.value.reason == "outbox_write_failed"
        assert "cannot be written" in str(refused.value)
        assert "disk is full" not in str(refused.value)  # the error's text is the log's, not the client's
        assert refused_conn.id not in meter.open
        assert writer.last_error is not None
        await asyncio.sleep(0.1)  # retries fail meanwhile
        assert types(store) == ["connection.open"]
        store.full = False
        again = connection()
        await meter.opened(again)  # writes work again: admitted, and the kept close is written first
        assert types(store) == ["connection.open", "connection.close", "connection.open"]
        assert writer.last_error is None
        await writer.stop()

    asyncio.run(scenario())
