"""The broker's metrics rules (broker/metrics.py): counters never go back, minutes are the billed minutes,
a connection stays in the series of the transport it opened as, histogram buckets are cumulative, and
the order connections close in changes no total."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from broker.metrics import ConnectionsCollector, Histogram, Tally, minutes_begun
from broker.services.model import ServiceConfig
from broker.transports.connection import Connection

SERVICE = ServiceConfig("svc-1", "acct-1", "http://origin.test", ("token",), "key", True)
TRANSPORTS = ("sse", "http-stream", "long-poll", "websocket")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class OpenConnections:
    """What ``ConnectionsCollector`` reads of the meter: its open connections and unflushed deliveries."""

    def __init__(self) -> None:
        self.open: dict[str, Connection] = {}

    def pending_delivered(self) -> list[tuple[str, int]]:
        return []


def scrape(collector: ConnectionsCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value for family in collector.collect() for s in family.samples
    }


# A connection's life: (transport index, when it opens, seconds it is held); and when scrapes happen.
lives = st.lists(
    st.tuples(st.integers(0, 3), st.floats(0, 600, allow_nan=False), st.floats(0, 400, allow_nan=False)),
    min_size=1,
    max_size=12,
)
scrapes = st.lists(st.floats(0, 1000, allow_nan=False), min_size=1, max_size=6)


@given(lives, scrapes)
def test_connection_minutes_never_go_back_and_end_as_each_connections_billed_minutes(lives, scrape_times):
    clock, meter = Clock(), OpenConnections()
    tally = Tally(clock)
    collector = ConnectionsCollector(tally, meter)  # type: ignore[arg-type]
    conns = [Connection(str(n), SERVICE, TRANSPORTS[t], 10) for n, (t, _, _) in enumerate(lives)]
    # Every open, close and scrape in time order (an open before a close at the same instant); halfway
    # through its life a long-poll becomes a stream (an origin's retry answered with a stream hold).
    steps = [(at, 0, n) for n, (_, at, _) in enumerate(lives)]
    steps += [(at + held / 2, 1, n) for n, (t, at, held) in enumerate(lives) if TRANSPORTS[t] == "long-poll"]
    steps += [(at + held, 2, n) for n, (_, at, held) in enumerate(lives)]
    steps += [(at, 3, -1) for at in scrape_times]
    last: dict[str, float] = {}
    for at, kind, n in sorted(steps):
        clock.now = at
        if kind == 0:
            tally.connection_opened(conns[n])
            meter.open[conns[n].id] = conns[n]
        elif kind == 1:
            conns[n].transport = "http-stream"
        elif kind == 2:
            tally.connection_closed(meter.open.pop(conns[n].id))
        else:
            samples = scrape(collector)
            for index, t in enumerate(TRANSPORTS):
                held_now = sum(1 for c in meter.open.values() if lives[int(c.id)][0] == index)
                connected = samples.get(("fanmeter_connection_connected", (("service", "svc-1"), ("transport", t))))
                assert (connected or 0.0) == held_now
                minutes = samples.get(("fanmeter_connection_minute_total", (("service", "svc-1"), ("transport", t))))
                assert (minutes or 0.0) >= last.get(t, 0.0)
                last[t] = minutes or 0.0
    final = scrape(collector)
    for index, t in enumerate(TRANSPORTS):
        labels = (("service", "svc-1"), ("transport", t))
        mine = [(at + held) - at for transport, at, held in lives if transport == index]  # as the clock measures
        assert final.get(("fanmeter_connection_minute_total", labels), 0.0) == sum(map(minutes_begun, mine))
        assert final.get(("fanmeter_connection_opened_total", labels), 0.0) == len(mine)
        assert final.get(("fanmeter_connection_connected", labels), 0.0) == 0


@given(st.floats(0, 10**6, allow_nan=False))
def test_minutes_begun_is_designs_billable_minutes(seconds):
    assert minutes_begun(seconds) == max(1, math.ceil(seconds / 60))


@given(st.lists(st.floats(0, 100, allow_nan=False), max_size=50))
def test_histogram_buckets_are_cumulative_and_end_with_every_observation(values):
    histogram = Histogram()
    for v in values:
        histogram.observe(v)
    buckets = histogram.cumulative()
    counts = [count for _, count in buckets]
    assert counts == sorted(counts) and buckets[-1] == ("+Inf", len(values))
    for bound, count in buckets[:-1]:
        assert count == sum(1 for v in values if v <= float(bound))
