"""In-process fan-out: which connections hold which channel of which service."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable

from broker.connection import Connection, Delivery
from broker.publish import TRANSPORT_FORMAT, Item

ChannelKey = tuple[str, str]  # (service_id, channel): services never share a channel


class Hub:
    """Channel subscriptions of this node's connections; ``deliver`` queues items to them.

    ``on_first``/``on_last`` tell a cross-node fan-out (Redis) when this node starts or stops
    holding a channel.
    """

    def __init__(self) -> None:
        self._subs: dict[ChannelKey, set[Connection]] = {}
        self._keys = itertools.count()
        self.on_first: Callable[[ChannelKey], None] = lambda _key: None
        self.on_last: Callable[[ChannelKey], None] = lambda _key: None
        self.settle: Callable[[], Awaitable[None]] = _nothing

    async def settled(self) -> None:
        """Return once subscriptions made so far are in effect everywhere (Redis: SUBSCRIBE sent)."""
        await self.settle()

    def subscribe(self, conn: Connection, channel: str) -> None:
        key = (conn.service.service_id, channel)
        subs = self._subs.setdefault(key, set())
        if not subs:
            self.on_first(key)
        subs.add(conn)
        conn.channels.add(channel)

    def unsubscribe(self, conn: Connection, channel: str) -> None:
        key = (conn.service.service_id, channel)
        subs = self._subs.get(key)
        conn.channels.discard(channel)
        if subs is None or conn not in subs:
            return
        subs.discard(conn)
        if not subs:
            del self._subs[key]
            self.on_last(key)

    def leave(self, conn: Connection) -> None:
        for channel in list(conn.channels):
            self.unsubscribe(conn, channel)

    def channels(self) -> list[ChannelKey]:
        return list(self._subs)

    def deliver(self, service_id: str, items: tuple[Item, ...]) -> int:
        """Queue each item to every local subscriber whose transport has a format in it; return how many queued."""
        queued = 0
        for item in items:
            subs = self._subs.get((service_id, item.channel))
            if not subs:
                continue
            key = f"{next(self._keys)}"
            # One Delivery per format, shared by every subscriber that takes it.
            deliveries = {name: Delivery(item, fmt, key) for name, fmt in item.formats.items()}
            for conn in list(subs):
                delivery = deliveries.get(TRANSPORT_FORMAT[conn.transport])
                if delivery is not None and conn.offer(delivery):
                    queued += 1
        return queued


async def _nothing() -> None:
    return None
