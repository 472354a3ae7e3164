"""The node's metering: connection open/alive/close, messages published and delivered, into the outbox.

Opens and publishes are written (durably) before the work is acknowledged to the client or
publisher. Deliveries are summed per published item and written every flush interval: a
delivery is counted only after the client write returned (docs/decisions.md, "Broker metering").
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from broker.grip.publish import Item
from broker.metrics import Tally
from broker.transports.connection import Connection
from broker.usage import events
from broker.usage.admission import OutboxAdmission
from broker.usage.events import Subject
from broker.usage.outbox import OutboxWriter

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(slots=True)
class _Delivered:
    """One published item's deliveries on this node since the last flush."""

    who: Subject
    channel: str
    count: int
    bytes: int


class Meter:
    def __init__(self, writer: OutboxWriter, node: str, clock: Clock = utc_now, tally: Tally | None = None) -> None:
        self._writer = writer
        self._node = node
        self._clock = clock
        self.open: dict[str, Connection] = {}
        # item key -> its deliveries since the last flush. The hub gives each published item its own
        # key, so the key alone names the item's account, service and channel (and hashes cheaply).
        self._delivered: dict[str, _Delivered] = {}
        # The broker's metrics count what is metered here, per connection and per item (never per delivery).
        self.tally = tally or Tally()

    @property
    def admission(self) -> OutboxAdmission:
        """The outbox's cap and the refusals so far (for the broker's metrics)."""
        return self._writer.admission

    async def opened(self, conn: Connection) -> None:
        """Record the open durably, before the client sees the response start.

        Raises ``MeteringRefused`` when the outbox is at its cap or cannot be written: the
        connection must then be refused (503), never held unmetered.
        """
        self._writer.admission.check()
        event = events.connection_open(self._node, new_id(), self._clock(), conn.who, conn.id, conn.transport)
        try:
            await self._writer.write([event])
        except asyncio.CancelledError:
            # The write goes on (shielded); if it lands, the open has no close and the pipeline closes
            # it at its last-seen time, the open's (one minute, as a close now would bill).
            raise
        except Exception:  # the writer logged why
            raise self._writer.admission.write_failed() from None
        # Open (for alive reports and the close) only once durable: an alive report of a connection
        # whose open then failed would bill a minute for a connection refused with 503.
        self.open[conn.id] = conn
        self.tally.connection_opened(conn)

    def closed(self, conn: Connection, reason: str) -> None:
        """Queue the close (safe in a cancelled task's finally; the writer commits it shortly)."""
        if self.open.pop(conn.id, None) is None:
            return
        self.tally.connection_closed(conn)
        if conn.dropped:  # operators see slow consumers in the close events they already have
            reason = f"{reason}; {conn.dropped} deliveries dropped (slow consumer)"
        event = events.connection_report(
            self._node, new_id(), self._clock(), conn.who, conn.id, (conn.bytes_out, conn.bytes_in), reason
        )
        self._writer.enqueue([event])

    async def published(self, who: Subject, items: tuple[Item, ...]) -> None:
        """One ``message.published`` per item, durable before the publisher gets its 200.

        Raises ``MeteringRefused`` as ``opened`` does: the publish must then be refused (503).
        """
        self._writer.admission.check()
        at = self._clock()
        batch = [events.message_event("published", self._node, new_id(), at, who, i.channel, 1, i.size) for i in items]
        try:
            await self._writer.write(batch)
        except Exception:  # the writer logged why
            raise self._writer.admission.write_failed() from None
        self.tally.items_received(who.service_id, len(items))

    def delivered(self, conn: Connection, channel: str, item_key: str, size: int) -> None:
        """Count one delivery the client write accepted."""
        totals = self._delivered.get(item_key)
        if totals is None:
            self._delivered[item_key] = _Delivered(conn.who, channel, 1, size)
        else:
            totals.count += 1
            totals.bytes += size

    def pending_delivered(self) -> list[tuple[str, int]]:
        """(service id, deliveries) counted since the last flush, one pair per item."""
        return [(d.who.service_id, d.count) for d in self._delivered.values()]

    def flush_delivered(self) -> None:
        if not self._delivered:
            return
        at, pending = self._clock(), self._delivered
        self._delivered = {}
        for d in pending.values():
            self.tally.deliveries_flushed(d.who.service_id, d.count)
        self._writer.enqueue(
            [
                events.message_event("delivered", self._node, new_id(), at, d.who, d.channel, d.count, d.bytes)
                for d in pending.values()
            ]
        )

    def alive_events(self) -> list[dict[str, Any]]:
        at = self._clock()
        return [
            events.connection_report(self._node, new_id(), at, c.who, c.id, (c.bytes_out, c.bytes_in))
            for c in self.open.values()
        ]

    async def run(self, alive_interval_s: float, flush_interval_s: float) -> None:
        """Flush deliveries every ``flush_interval_s``; report every open connection every alive interval."""
        loop = asyncio.get_running_loop()
        next_alive = loop.time() + alive_interval_s
        while True:
            await asyncio.sleep(min(flush_interval_s, max(0.0, next_alive - loop.time())))
            self.flush_delivered()
            if loop.time() >= next_alive:
                next_alive += alive_interval_s
                reports = self.alive_events()
                if reports:
                    self._writer.enqueue(reports)

    async def stop(self) -> None:
        """Close every connection still open (shutdown) and make everything durable."""
        for conn in list(self.open.values()):
            self.closed(conn, "shutdown")
        self.flush_delivered()
        await self._writer.flush()
