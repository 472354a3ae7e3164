"""Pushpin stats records to fanmeter CloudEvents (DESIGN.md "Event contract"); pure, the clock is passed in.

The rules (docs/decisions.md, "Pushpin adapter"):

- ``conn`` seen for the first time -> ``connection.open``; seen again (Pushpin re-sends it every
  3/4 of ``ttl`` while the connection lives) -> ``connection.alive``; ``unavailable`` ->
  ``connection.close``. Pushpin names the route only on the first records of a connection, so
  the translator remembers each open connection's subject until it closes or its ``ttl`` lapses
  (the adapter persists that memory with the events, so a restart keeps it).
- A lapsed ``ttl`` (no refresh seen, e.g. the disconnect was lost on the lossy PUB socket)
  emits nothing: the pipeline ends a connection without a close at its last-seen time, the
  last refresh, and a refresh or close that still arrives can extend it. A close invented here
  could not be taken back (the earliest close wins).
- ``message`` -> ``message.delivered`` with Pushpin's ``count`` (subscribers the item was
  relayed to, per transport); ``report`` on the global route -> ``message.published`` with its
  ``received`` (items published since the previous report).
- Event ids are derived from the record: ``open``/``close`` from the connection alone (one of
  each per connection, so seeing it again after a restart of the adapter deduplicates), the
  others from the record and the instant it was received. Feeding the same records at the
  same instants again yields the same ids, which the pipeline deduplicates.
- Pushpin's stats have no per-connection byte counters: ``bytes_out``/``bytes_in`` are 0.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from broker.usage import events
from broker.usage.events import Subject
from fanmeter.pushpin_stats.records import ConnRecord, MessageRecord, Record, ReportRecord
from fanmeter.pushpin_stats.routemap import RouteMap
from kernel.instants import from_micros, to_micros

TRANSPORTS = {"ws": "websocket", "http": "http-stream"}  # Pushpin does not tell SSE/stream/long-poll apart
PUBLISHED_CHANNEL = "*"  # a report counts items of every channel together
MAX_ID = 256


@dataclass(frozen=True, slots=True)
class Translation:
    events: list[dict[str, Any]]
    skipped: str | None = None  # why the record gave no event, for the operator


@dataclass(frozen=True, slots=True)
class OpenConnection:
    """What the translator remembers of a connection until it closes or its ttl lapses."""

    origin: str
    conn_id: str
    subject: Subject
    last_seen_us: int
    ttl_us: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.origin, self.conn_id)


@dataclass(slots=True)
class Translator:
    """Turns records into events for the node ``node`` (event source ``pushpin/<node>``)."""

    node: str
    route_map: RouteMap
    _open: dict[tuple[str, str], OpenConnection] = field(default_factory=dict)
    _changed: set[tuple[str, str]] = field(default_factory=set)

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def restore(self, connections: list[OpenConnection], at: datetime) -> None:
        """Remember connections saved by a previous run, so their later records keep their route's service.

        Each gets a fresh ``ttl`` from ``at``: a connection is not forgotten for the time the adapter was down.
        """
        now_us = to_micros(at)
        self._open.update((c.key, replace(c, last_seen_us=max(c.last_seen_us, now_us))) for c in connections)

    def take_changes(self) -> tuple[list[OpenConnection], list[tuple[str, str]]]:
        """Connections opened or refreshed, and keys forgotten, since the last call (to persist them)."""
        changed, self._changed = self._changed, set()
        kept = [self._open[key] for key in sorted(changed) if key in self._open]
        return kept, sorted(key for key in changed if key not in self._open)

    def translate(self, record: Record, at: datetime) -> Translation:
        """The events one record, received at ``at``, stands for."""
        if isinstance(record, ConnRecord):
            return self._conn(record, to_micros(at))
        if isinstance(record, MessageRecord):
            return self._message(record, to_micros(at))
        return self._report(record, to_micros(at))

    def expire(self, at: datetime) -> int:
        """Forget connections whose ``ttl`` lapsed without a refresh (as Pushpin itself does); return how many."""
        now_us = to_micros(at)
        lapsed = [key for key, c in self._open.items() if now_us - c.last_seen_us > c.ttl_us]
        for key in lapsed:
            del self._open[key]
        self._changed.update(lapsed)
        return len(lapsed)

    def _conn(self, record: ConnRecord, at_us: int) -> Translation:
        key = (record.origin, record.conn_id)
        tracked = self._open.get(key)
        subject = tracked.subject if tracked else self.route_map.for_route(record.route)
        if subject is None:
            return Translation([], f"unmapped route {record.route!r}")
        connection_id, at = connection_id_for(record), from_micros(at_us)
        self._changed.add(key)
        if record.unavailable:
            self._open.pop(key, None)
            close_id = event_id("close", record.origin, record.conn_id)
            event = events.connection_report(self.node, close_id, at, subject, connection_id, (0, 0), "disconnected")
        elif tracked is not None:
            self._open[key] = OpenConnection(*key, subject, at_us, (record.ttl_s or 0) * 1_000_000)
            alive_id = event_id("alive", record.origin, record.conn_id, str(at_us))
            event = events.connection_report(self.node, alive_id, at, subject, connection_id, (0, 0))
        else:
            self._open[key] = OpenConnection(*key, subject, at_us, (record.ttl_s or 0) * 1_000_000)
            open_id = event_id("open", record.origin, record.conn_id)
            transport = TRANSPORTS[record.kind or "http"]
            event = events.connection_open(self.node, open_id, at, subject, connection_id, transport)
        return Translation([_sourced(event)])

    def _message(self, record: MessageRecord, at_us: int) -> Translation:
        subject = self.route_map.for_channel(record.channel)
        if subject is None:
            return Translation([], f"unmapped channel {record.channel!r}")
        if record.count == 0:
            return Translation([], "no deliveries")
        parts = ("delivered", record.origin, record.channel, record.item_id or "", record.transport, str(at_us))
        event = events.message_event(
            "delivered", self.node, event_id(*parts), from_micros(at_us), subject, record.channel, record.count, 0
        )
        return Translation([_sourced(event)])

    def _report(self, record: ReportRecord, at_us: int) -> Translation:
        if record.route is not None or not record.received:
            return Translation([], None)  # per-route reports never count received items in Pushpin
        subject = self.route_map.for_published()
        if subject is None:
            return Translation([], "published counts need a 'default' entry in the route map")
        published_id = event_id("published", record.origin, str(at_us))
        event = events.message_event(
            "published", self.node, published_id, from_micros(at_us), subject, PUBLISHED_CHANNEL, record.received, 0
        )
        return Translation([_sourced(event)])


def source_for(node: str) -> str:
    """The CloudEvents source of an adapter: ``pushpin/<node>``."""
    return f"pushpin/{node}"


def _sourced(event: dict[str, Any]) -> dict[str, Any]:
    """The broker's builders name the source ``broker/<node>``; these events come from ``pushpin/<node>``."""
    node = event["source"].removeprefix("broker/")
    return {**event, "source": source_for(node)}


def event_id(*parts: str) -> str:
    """A deterministic event id: the same parts always give the same id.

    >>> event_id("open", "pushpin-handler_1", "condure:0-0-1")
    '633daeefa63b86adc5b21ce8e9677a68'
    """
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def connection_id_for(record: ConnRecord) -> str:
    """Pushpin's ids (``condure:0-0-1``) restart with Pushpin, so they are qualified by its instance id."""
    qualified = f"{record.origin}/{record.conn_id}"
    return qualified if len(qualified) <= MAX_ID else f"{record.origin[:200]}/{event_id(record.conn_id)}"


class MonotonicStamp:
    """Receipt instants in strictly increasing microseconds, so two records never share an instant."""

    def __init__(self) -> None:
        self._last_us = 0

    def __call__(self, now: datetime) -> datetime:
        self._last_us = max(to_micros(now), self._last_us + 1)
        return from_micros(self._last_us)
