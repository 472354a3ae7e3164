"""The broker's Prometheus series (``GET /metrics`` on the metrics listener), named after Pushpin's.

Cost: nothing per delivery, next to nothing per connection. Most series are read at scrape time
from what the broker keeps anyway: the meter's open connections (with their byte and drop
counters) and the deliveries it has not flushed yet. The rest are plain integers in ``Tally``,
bumped once per connection opened or closed, per publish request, per origin request, and per
published item at a delivery flush. A scrape walks the open connections once (about a
microsecond each) and reads the outbox file in a thread.

Every series is documented in the README ("Broker metrics"); docs/decisions.md ("Broker
observability") says why the names are Pushpin's. To add a series: yield its family from a
collector's ``collect`` (or a new collector's) and list that collector in ``BrokerMetrics``;
the outbox's own counters belong in ``OutboxCollector.collect``.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from broker.usage.admission import OutboxAdmission
from broker.usage.outbox import Backlog, read_backlog

if TYPE_CHECKING:
    from broker.limits import BrokerLimits
    from broker.transports.connection import Connection
    from broker.usage.meter import Meter

logger = logging.getLogger(__name__)

PREFIX = "fanmeter_"
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# Origin request latency buckets, in seconds: a GRIP origin answers in milliseconds, a slow one in
# seconds, and the origin client gives up at 30 s.
ORIGIN_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
Key = tuple[str, str]  # (transport, service id): the labels of every per-connection series


def minutes_begun(elapsed_s: float) -> int:
    """Minutes of a connection that have begun ``elapsed_s`` after its open: ``max(1, ceil(elapsed / 60 s))``,
    DESIGN.md's billable minutes, so a closed connection's count is the minutes it is billed.

    >>> minutes_begun(0.0), minutes_begun(60.0), minutes_begun(60.5)
    (1, 1, 2)
    """
    return max(1, math.ceil(elapsed_s / 60))


class Histogram:
    """Observations in cumulative-ready buckets: ``counts[i]`` are those at most ``bounds[i]``, the last +Inf."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = ORIGIN_BUCKETS_S) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        """Prometheus' buckets: (upper bound, observations at most it), ending with +Inf (the count).

        >>> h = Histogram((0.1, 1.0)); h.observe(0.1); h.observe(0.5); h.observe(3.0); h.cumulative()
        [('0.1', 1), ('1.0', 2), ('+Inf', 3)]
        """
        running, buckets = 0, list[tuple[str, float]]()
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            buckets.append((bound, running))
        return buckets


@dataclass(slots=True)
class _Ended:
    """What the closed connections of one (transport, service) added up to."""

    minutes: int = 0
    bytes_out: int = 0
    bytes_in: int = 0
    dropped: int = 0


class Tally:
    """The broker's own counters: plain integers, bumped where the broker already does the work."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.opened: dict[Key, int] = {}
        self.ended: dict[Key, _Ended] = {}
        self.received: dict[str, int] = {}  # service id -> items the publish API accepted
        self.sent: dict[str, int] = {}  # service id -> deliveries flushed to the outbox
        self.publish_answers: dict[int, int] = {}  # status code -> publish requests answered with it
        self.origin_latency: dict[str, Histogram] = {}  # service id -> its origin requests' durations

    def connection_opened(self, conn: Connection) -> None:
        conn.opened_at, conn.opened_as = self.clock(), conn.transport
        key = (conn.transport, conn.service.service_id)
        self.opened[key] = self.opened.get(key, 0) + 1

    def connection_closed(self, conn: Connection) -> None:
        key = (conn.opened_as, conn.service.service_id)
        ended = self.ended.get(key)
        if ended is None:
            ended = self.ended[key] = _Ended()
        ended.minutes += minutes_begun(self.clock() - conn.opened_at)
        ended.bytes_out += conn.bytes_out
        ended.bytes_in += conn.bytes_in
        ended.dropped += conn.dropped

    def items_received(self, service_id: str, count: int) -> None:
        self.received[service_id] = self.received.get(service_id, 0) + count

    def deliveries_flushed(self, service_id: str, count: int) -> None:
        self.sent[service_id] = self.sent.get(service_id, 0) + count

    def publish_answered(self, status: int) -> None:
        self.publish_answers[status] = self.publish_answers.get(status, 0) + 1

    def origin_answered(self, service_id: str, duration_s: float) -> None:
        """One origin request's duration, whatever its outcome (a failure's time is the time it took to fail)."""
        histogram = self.origin_latency.get(service_id)
        if histogram is None:
            histogram = self.origin_latency[service_id] = Histogram()
        histogram.observe(duration_s)


@dataclass(slots=True)
class _Live:
    """The open connections of one (transport, service), as a scrape finds them."""

    count: int = 0
    minutes: int = 0
    bytes_out: int = 0
    bytes_in: int = 0
    dropped: int = 0


def _live(connections: Iterable[Connection], now: float) -> dict[Key, _Live]:
    live: dict[Key, _Live] = {}
    for conn in connections:
        key = (conn.opened_as, conn.service.service_id)
        found = live.get(key)
        if found is None:
            found = live[key] = _Live()
        found.count += 1
        found.minutes += minutes_begun(now - conn.opened_at)
        found.bytes_out += conn.bytes_out
        found.bytes_in += conn.bytes_in
        found.dropped += conn.dropped
    return live


def _family(kind: type[CounterMetricFamily] | type[GaugeMetricFamily], name: str, documentation: str,
            labels: tuple[str, ...], values: Iterable[tuple[tuple[str, ...], float]]) -> Metric:  # fmt: skip
    family = kind(PREFIX + name, documentation, labels=list(labels))
    for label_values, value in sorted(values):
        family.add_metric(list(label_values), value)
    return family


# Per-connection counters: (series, help, what each connection adds), summed over closed and open ones.
CONNECTION_COUNTERS = (
    ("connection_minute", "Connection minutes begun, max(1, ceil(duration / 60 s)) per connection, as billed",
     "minutes"),
    ("client_content_bytes_sent", "Body or message payload bytes written to clients (bytes_out)", "bytes_out"),
    ("client_content_bytes_received", "Request body or message payload bytes read from clients (bytes_in)",
     "bytes_in"),
    ("message_dropped", "Deliveries dropped because the connection's queue was full (slow consumer)", "dropped"),
)  # fmt: skip
PER_CONNECTION = ("transport", "service")


class ConnectionsCollector:
    """Connections (open, opened, minutes, bytes, dropped deliveries) and messages received and sent."""

    def __init__(self, tally: Tally, meter: Meter) -> None:
        self._tally, self._meter = tally, meter

    def collect(self) -> Iterator[Metric]:
        tally = self._tally
        live = _live(self._meter.open.values(), tally.clock())
        keys = tally.opened.keys() | live.keys()
        connected = [(k, live[k].count if k in live else 0) for k in keys]
        yield _family(GaugeMetricFamily, "connection_connected", "Connections open now", PER_CONNECTION, connected)
        yield _family(CounterMetricFamily, "connection_opened", "Connections opened", PER_CONNECTION,
                      tally.opened.items())  # fmt: skip
        none = _Ended()
        for name, documentation, field in CONNECTION_COUNTERS:
            values = [(k, getattr(tally.ended.get(k, none), field) + getattr(live.get(k, none), field)) for k in keys]
            yield _family(CounterMetricFamily, name, documentation, PER_CONNECTION, values)
        received = [((s,), n) for s, n in tally.received.items()]
        yield _family(CounterMetricFamily, "message_received", "Items received by the publish API", ("service",),
                      received)  # fmt: skip
        sent = dict(tally.sent)
        for service_id, count in self._meter.pending_delivered():
            sent[service_id] = sent.get(service_id, 0) + count
        yield _family(CounterMetricFamily, "message_sent", "Deliveries handed to clients", ("service",),
                      [((s,), n) for s, n in sent.items()])  # fmt: skip


class RequestsCollector:
    """Publish API answers by status, and the origin requests' latency."""

    def __init__(self, tally: Tally) -> None:
        self._tally = tally

    def collect(self) -> Iterator[Metric]:
        tally = self._tally
        # By code only: a service id in a refused publish's path is the caller's to choose.
        yield _family(CounterMetricFamily, "publish_requests", "Publish API requests by the status answered",
                      ("code",), [((str(code),), n) for code, n in tally.publish_answers.items()])  # fmt: skip
        latency = HistogramMetricFamily(
            PREFIX + "origin_request_duration_seconds",
            "Requests to origins, from sending to the whole answer read (or the failure)",
            labels=["service"],
        )
        for service_id, histogram in sorted(tally.origin_latency.items()):
            latency.add_metric([service_id], histogram.cumulative(), histogram.sum)
        yield latency


class OutboxCollector:
    """The node's outbox: events not yet acknowledged by the pipeline, and how long the oldest has waited.

    ``refresh`` reads the outbox file (in a thread, off the event loop) before each scrape; ``collect``
    reports what it read. Counters of the outbox writer itself (events it refused or dropped) go here too.
    """

    def __init__(self, path: Path, now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 admission: OutboxAdmission | None = None) -> None:  # fmt: skip
        self._path, self._now = path, now
        self._backlog: Backlog | None = Backlog(0, None)
        self._admission = admission

    async def refresh(self) -> None:
        try:
            self._backlog = await asyncio.to_thread(read_backlog, self._path)
        except sqlite3.Error as error:  # the series are left out of this scrape: no figure is better than a wrong one
            logger.warning("metrics: cannot read the outbox %s: %s", self._path, error)
            self._backlog = None

    def collect(self) -> Iterator[Metric]:
        if self._admission is not None:  # the cap and what it refused (broker/usage/admission.py)
            yield GaugeMetricFamily(
                PREFIX + "outbox_max_events",
                "Unacknowledged events at which new held connections and publishes are refused with 503",
                self._admission.max_events,
            )
            refusals = CounterMetricFamily(
                PREFIX + "outbox_refusals",
                "New held connections and publishes refused with 503 because the outbox could not meter them",
                labels=["reason"],
            )
            for reason, count in sorted(self._admission.refused.items()):
                refusals.add_metric([reason], count)
            yield refusals
        if self._backlog is None:
            return
        events, oldest = self._backlog
        yield GaugeMetricFamily(
            PREFIX + "outbox_events", "Metering events in the outbox not yet acknowledged by the pipeline", events
        )
        age = max(0.0, (self._now() - oldest).total_seconds()) if oldest is not None else 0.0
        yield GaugeMetricFamily(
            PREFIX + "outbox_oldest_event_age_seconds",
            "Age of the oldest event not yet acknowledged by the pipeline (0 when there is none)",
            age,
        )


class LimitsCollector:
    """What the node's limits refused (broker/limits.py, kernel/http_limits.py), counted where they refuse."""

    def __init__(self, limits: BrokerLimits) -> None:
        self._limits = limits

    def collect(self) -> Iterator[Metric]:
        limits = self._limits
        yield _family(CounterMetricFamily, "limit_publishes_refused",
                      "Publishes refused with 429: the token over its rate",
                      ("service",), [((s,), n) for s, n in limits.publishes_refused.items()])  # fmt: skip
        yield _family(CounterMetricFamily, "limit_held_refused",
                      "Held connections refused with 503: the service at its limit",
                      ("service",), [((s,), n) for s, n in limits.held.refused.items()])  # fmt: skip
        # Not by address: the labels would be as many as the clients.
        yield _family(CounterMetricFamily, "limit_connections_refused",
                      "Connections refused with 429: their client address at its limit", (),
                      [((), limits.addresses.refused)])  # fmt: skip


class BrokerMetrics:
    """The registry ``GET /metrics`` renders: one per broker (tests run several in one process)."""

    def __init__(self, tally: Tally, meter: Meter, outbox_path: Path, limits: BrokerLimits | None = None) -> None:
        self.outbox = OutboxCollector(outbox_path, admission=meter.admission)
        self.registry = CollectorRegistry(auto_describe=False)
        collectors: tuple[Collector, ...] = (ConnectionsCollector(tally, meter), RequestsCollector(tally), self.outbox)
        if limits is not None:
            collectors += (LimitsCollector(limits),)
        for collector in collectors:
            self.registry.register(collector)

    async def exposition(self) -> bytes:
        """The text format (version 0.0.4) of every series, the outbox read afresh."""
        await self.outbox.refresh()
        return generate_latest(self.registry)
