"""In-process fan-out: which connections hold which channel of which service."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping

from broker.grip import filters
from broker.grip.publish import TRANSPORT_FORMAT, Item, WsMessageFormat
from broker.grip.reliability import ChannelKey, LastIds, Sequencer
from broker.transports.connection import Connection, Delivery

# Pushpin's subscription_linger: a channel last held by a long-poll stays subscribed (and its last
# id kept) this long, so a client polling again finds out what was published in between.
LINGER_S = 60.0
# Pushpin refreshes the holds of a channel this long after the node subscribed to it: a long-poll
# asks its origin again, a stream with a next link fetches it. Anything published between the
# origin's answer and the subscription taking effect is recovered that way.
SUBSCRIBED_DELAY_S = 1.0
# Holds woken per turn of the event loop. Between slices the loop reads the sockets again, so a
# publish arriving while thousands of holds are still being written to joins their queues, and
# each of those connections gets both items in one write (docs/decisions.md, "Fan-out writes").
WAKE_SLICE = 256


class Hub:
    """Channel subscriptions of this node's connections; ``deliver`` queues items to them.

    ``on_first``/``on_last`` tell a cross-node fan-out (Redis) when this node starts or stops
    holding a channel. Items pass the ``sequencer`` first (``prev-id`` order, duplicates dropped),
    which keeps each held channel's last id in ``last_ids``; ``tick`` sends what waited too long.
    """

    def __init__(self, sequencer: Sequencer | None = None, linger_s: float = LINGER_S,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self._subs: dict[ChannelKey, set[Connection]] = {}
        # Subscriptions that carry filters, by channel, and the meta of connections that set some:
        # a channel without filtered subscribers costs one dict lookup per item, nothing per delivery.
        self._filters: dict[ChannelKey, dict[Connection, tuple[str, ...]]] = {}
        self._meta: dict[Connection, dict[str, str]] = {}
        # The channels' prev-ids of HTTP holds whose subscriptions carry build-id (its variables).
        self._prev_ids: dict[Connection, Mapping[str, str | None]] = {}
        self._keys = itertools.count()
        self.sequencer = sequencer or Sequencer(LastIds())
        self.last_ids = self.sequencer.last_ids
        self._linger_s = linger_s
        self._lingering: dict[ChannelKey, float] = {}  # channels nobody holds now, kept until then
        self._fresh: dict[ChannelKey, float] = {}  # channels subscribed a moment ago: refresh their holds then
        self._clock = clock
        self.on_first: Callable[[ChannelKey], None] = lambda _key: None
        self.on_last: Callable[[ChannelKey], None] = lambda _key: None
        self.settle: Callable[[], Awaitable[None]] = _nothing
        self._to_wake: deque[Connection] = deque()
        self._waking = False

    async def settled(self) -> None:
        """Return once subscriptions made so far are in effect everywhere (Redis: SUBSCRIBE sent)."""
        await self.settle()

    def subscribe(self, conn: Connection, channel: str, filters: tuple[str, ...] = ()) -> None:
        """Hold ``channel`` for ``conn``; with ``filters`` (broker.grip.filters) each item is judged for it."""
        key = (conn.service.service_id, channel)
        subs = self._subs.setdefault(key, set())
        if not subs and self._lingering.pop(key, None) is None:
            self._fresh[key] = self._clock() + SUBSCRIBED_DELAY_S
            self.on_first(key)
        subs.add(conn)
        conn.channels.add(channel)
        if filters:
            self._filters.setdefault(key, {})[conn] = filters
        elif self._filters:
            self._unfilter(key, conn)

    def set_meta(self, conn: Connection, meta: dict[str, str]) -> None:
        """The connection's meta its filters judge items by (the dict is kept, not copied)."""
        if meta:
            self._meta[conn] = meta
        else:
            self._meta.pop(conn, None)

    def set_prev_ids(self, conn: Connection, prev_ids: Mapping[str, str | None]) -> None:
        """The hold's channels and the prev-ids it expects, for build-id (the mapping is kept, not copied:
        the stream updates it as it delivers)."""
        self._prev_ids[conn] = prev_ids

    def _unfilter(self, key: ChannelKey, conn: Connection) -> None:
        filtered = self._filters.get(key)
        if filtered is not None and filtered.pop(conn, None) is not None and not filtered:
            del self._filters[key]

    def unsubscribe(self, conn: Connection, channel: str) -> None:
        key = (conn.service.service_id, channel)
        subs = self._subs.get(key)
        conn.channels.discard(channel)
        if subs is None or conn not in subs:
            return
        subs.discard(conn)
        if self._filters:
            self._unfilter(key, conn)
        if subs:
            return
        if conn.transport == "long-poll" and self._linger_s > 0:
            self._lingering[key] = self._clock() + self._linger_s  # the client may well poll again
        else:
            self._drop(key)

    def _drop(self, key: ChannelKey) -> None:
        del self._subs[key]
        self._filters.pop(key, None)
        self._fresh.pop(key, None)
        self.sequencer.clear(key)
        self.last_ids.forget(key)
        self.on_last(key)

    def leave(self, conn: Connection) -> None:
        for channel in list(conn.channels):
            self.unsubscribe(conn, channel)
        if self._meta:
            self._meta.pop(conn, None)
        if self._prev_ids:
            self._prev_ids.pop(conn, None)

    def channels(self) -> list[ChannelKey]:
        return list(self._subs)

    def deliver(self, service_id: str, items: tuple[Item, ...]) -> int:
        """Queue each item to every local subscriber whose transport has a format in it; return how many queued.

        Items go through the sequencer first: one may wait for the item its ``prev-id`` names.
        """
        now, queued = self._clock(), 0
        for item in items:
            key = (service_id, item.channel)
            for ready in self.sequencer.add(key, item, now, key in self._subs):
                queued += self._dispatch(key, ready)
        return queued

    def tick(self) -> int:
        """Send the items that waited long enough for their predecessor, refresh the holds of channels
        subscribed a second ago, and end the lingers that are over."""
        now = self._clock()
        queued = sum(self._dispatch(key, item) for key, item in self.sequencer.expire(now))
        for key in _take_due(self._fresh, now):
            for conn in self._subs.get(key, ()):
                if conn.transport != "websocket":  # as in Pushpin, only HTTP holds are refreshed
                    conn.want_refresh()
        for key in _take_due(self._lingering, now):
            self._drop(key)
        return queued

    def _dispatch(self, key: ChannelKey, item: Item) -> int:
        subs = self._subs.get(key)
        if not subs:
            return 0
        item_key = f"{next(self._keys)}"
        # One Delivery per format, shared by every subscriber that takes it.
        deliveries = {name: Delivery(item, fmt, item_key) for name, fmt in item.formats.items()}
        filtered = self._filters.get(key)
        if filtered is not None:
            return self._dispatch_filtered(subs, filtered, item, deliveries)
        queued, to_wake = 0, self._to_wake
        for conn in subs:  # offer() only queues: nothing here changes the subscriptions
            delivery = deliveries.get(TRANSPORT_FORMAT[conn.transport])
            if delivery is not None and conn.offer(delivery):
                queued += 1
                if conn.queued == 1:  # with more queued, it is waiting to be woken already
                    to_wake.append(conn)
        if to_wake and not self._waking:
            self._wake_slice()
        return queued

    def _dispatch_filtered(self, subs: set[Connection], filtered: dict[Connection, tuple[str, ...]], item: Item,
                           deliveries: dict[str, Delivery]) -> int:  # fmt: skip
        """``_dispatch`` for a channel some subscribers of which carry filters: a delivery a filter drops is
        never sent nor metered (queued only as ``skipped`` for a hold that follows the channel's prev-ids);
        one a content filter rewrote is this subscriber's own; one it cannot render is dropped for a
        WebSocket and queued as ``unrenderable`` for an HTTP hold, which ends on it (Pushpin 1.36)."""
        queued, to_wake, meta, prev_ids = 0, self._to_wake, self._meta, self._prev_ids
        for conn in subs:
            delivery = deliveries.get(TRANSPORT_FORMAT[conn.transport])
            if delivery is None:
                continue
            names = filtered.get(conn)
            if names is not None:
                ids = prev_ids.get(conn)
                at_item = filters.ids_at_item(ids, item.channel, item.id) if ids else filters.NO_IDS
                fmt = filters.apply(names, delivery.format, item.meta, meta.get(conn), conn.channels, at_item)
                if isinstance(fmt, filters.Unrenderable):
                    if isinstance(delivery.format, WsMessageFormat):
                        continue  # a WebSocket drops it (Pushpin 1.36 logs it and sends nothing)
                    delivery = Delivery(item, delivery.format, delivery.item_key, unrenderable=fmt.filter)
                elif fmt is None:
                    if not (ids and ids.get(item.channel) is not None):
                        continue
                    delivery = Delivery(item, delivery.format, delivery.item_key, skipped=True)
                elif fmt is not delivery.format:
                    delivery = Delivery(item, fmt, delivery.item_key)
            if conn.offer(delivery):
                queued += 1
                if conn.queued == 1:
                    to_wake.append(conn)
        if to_wake and not self._waking:
            self._wake_slice()
        return queued

    def _wake_slice(self) -> None:
        """Wake the next ``WAKE_SLICE`` holds with something queued; the rest on the next turn of the loop."""
        to_wake = self._to_wake
        for _ in range(min(WAKE_SLICE, len(to_wake))):
            to_wake.popleft().wake()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop, so nobody waits (the hub driven directly, as in unit tests)
            to_wake.clear()
        self._waking = bool(to_wake)
        if to_wake:
            loop.call_soon(self._wake_slice)


def _take_due(deadlines: dict[ChannelKey, float], now: float) -> list[ChannelKey]:
    """Remove and return the keys whose deadline has come; a key is (re)inserted with a deadline one
    fixed delay ahead, so the dict's order is its deadlines' order and the scan stops at the first to come."""
    due = []
    for key, deadline in deadlines.items():
        if deadline > now:
            break
        due.append(key)
    for key in due:
        del deadlines[key]
    return due


async def _nothing() -> None:
    return None
