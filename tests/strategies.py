"""Test data for the metering rules: CloudEvent builders, Hypothesis strategies, a seeded trace.

Everything here builds CloudEvent *dicts* in structured JSON mode, exactly what a broker
node sends, so every test goes through ``parse_event`` as production does.

- Plain builders (``open_event``, ``alive_event``, ``close_event``, ``published_event``,
  ``delivered_event``, ``format_time``, ``utc_micros``) for hand-written unit tests.
- ``parsed(dicts)`` turns dicts into ``MeteringEvent`` values and refuses rejections.
- Hypothesis strategies ``connection_traces()`` and ``event_sets()``, with times
  concentrated around month boundaries and sometimes spanning a whole month.
- ``generate_trace(seed, n_events)``: a large, deterministic, realistic mixed trace for
  integration tests and benchmarks (``random.Random``, no Hypothesis).
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from kernel.instants import MICROS_PER_MINUTE, MICROS_PER_SECOND, from_micros, to_micros
from metering.domain.events import EventType, MeteringEvent, parse_event

MICROS_PER_HOUR = 60 * MICROS_PER_MINUTE
MICROS_PER_DAY = 24 * MICROS_PER_HOUR

# Offsets a broker node may stamp its times with; "-00:00" is RFC 3339's "UTC, local offset unknown".
OFFSETS = ("Z", "z", "+00:00", "-00:00", "+05:30", "-08:00", "+01:00", "-03:30", "+09:45", "+14:00", "-12:00")
TRANSPORTS = ("sse", "http-stream", "long-poll", "websocket")
CLOSE_REASONS = (None, "client-closed", "timeout", "publisher-close", "node-shutdown")
CHANNELS = ("news", "scores", "chat:42", "prices")
NODES = ("broker/node-1", "broker/node-2", "broker/node-3")
ACCOUNTS = ("acct-1", "acct-2", "acct-3")
SERVICES = {account: (f"svc-{account[-1]}-a", f"svc-{account[-1]}-b") for account in ACCOUNTS}

_builder_ids = itertools.count(1)


# --- plain helpers ---------------------------------------------------------------------------


def utc_micros(text: str) -> int:
    """Return the UTC microseconds of an ISO 8601 instant with a zone, e.g. ``2026-01-31T23:59:30Z``."""
    return to_micros(datetime.fromisoformat(text.replace("Z", "+00:00")))


def offset_minutes(offset: str) -> int:
    """Return the minutes east of UTC of an RFC 3339 offset: ``Z`` -> 0, ``-08:00`` -> -480."""
    if offset in ("Z", "z"):
        return 0
    sign = -1 if offset[0] == "-" else 1
    return sign * (int(offset[1:3]) * 60 + int(offset[4:6]))


def format_time(time_us: int, offset: str = "Z", digits: int = 6, nanos: int = 0) -> str:
    """Render UTC microseconds as RFC 3339 in the given offset, exactly that instant.

    ``digits`` is the fraction length: 0 or 3 only when the dropped digits are zero, 6, or
    9 (then ``nanos`` supplies the sub-microsecond digits, which the parser truncates).
    """
    local = from_micros(time_us) + timedelta(minutes=offset_minutes(offset))
    fraction = f"{local.microsecond:06d}"
    if digits < 6 and fraction[digits:].strip("0"):
        raise ValueError(f"{digits} fraction digits cannot represent {time_us} µs exactly")
    fraction = fraction[:digits] if digits <= 6 else fraction + f"{nanos:03d}"[: digits - 6]
    return local.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + offset


def cloud_event(
    event_type: EventType | str,
    time: str | int,
    data: dict[str, Any],
    *,
    source: str = "broker/node-1",
    id: str | None = None,
) -> dict[str, Any]:
    """Build one structured-mode CloudEvent dict; ``time`` may be UTC microseconds or a string."""
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": id if id is not None else f"evt-{next(_builder_ids)}",
        "source": source,
        "type": str(event_type),
        "time": format_time(time) if isinstance(time, int) else time,
        "datacontenttype": "application/json",
        "data": data,
    }
    if "service_id" in data:
        event["subject"] = data["service_id"]
    return event


def _connection_data(account: str, service: str, connection: str, **fields: Any) -> dict[str, Any]:
    return {"account_id": account, "service_id": service, "connection_id": connection, **fields}


def open_event(
    time: str | int,
    *,
    account: str = "acct-1",
    service: str = "svc-1",
    connection: str = "conn-1",
    transport: str = "sse",
    **attrs: Any,
) -> dict[str, Any]:
    """Build a ``fanout.connection.open`` event."""
    data = _connection_data(account, service, connection, transport=transport)
    return cloud_event(EventType.CONNECTION_OPEN, time, data, **attrs)


def alive_event(
    time: str | int,
    bytes_out: int,
    bytes_in: int = 0,
    *,
    account: str = "acct-1",
    service: str = "svc-1",
    connection: str = "conn-1",
    **attrs: Any,
) -> dict[str, Any]:
    """Build a ``fanout.connection.alive`` event carrying cumulative byte counters."""
    data = _connection_data(account, service, connection, bytes_out=bytes_out, bytes_in=bytes_in)
    return cloud_event(EventType.CONNECTION_ALIVE, time, data, **attrs)


def close_event(
    time: str | int,
    bytes_out: int = 0,
    bytes_in: int = 0,
    reason: str | None = None,
    *,
    account: str = "acct-1",
    service: str = "svc-1",
    connection: str = "conn-1",
    **attrs: Any,
) -> dict[str, Any]:
    """Build a ``fanout.connection.close`` event; ``reason`` is left out when None."""
    data = _connection_data(account, service, connection, bytes_out=bytes_out, bytes_in=bytes_in)
    if reason is not None:
        data["reason"] = reason
    return cloud_event(EventType.CONNECTION_CLOSE, time, data, **attrs)


def _message_event(
    event_type: EventType,
    time: str | int,
    count: int,
    account: str,
    service: str,
    channel: str,
    size: int,
    **attrs: Any,
) -> dict[str, Any]:
    data = {"account_id": account, "service_id": service, "channel": channel, "count": count, "bytes": size}
    return cloud_event(event_type, time, data, **attrs)


def published_event(
    time: str | int,
    count: int,
    *,
    account: str = "acct-1",
    service: str = "svc-1",
    channel: str = "news",
    size: int = 100,
    **attrs: Any,
) -> dict[str, Any]:
    """Build a ``fanout.message.published`` event (``size`` is the ``bytes`` data field)."""
    return _message_event(EventType.MESSAGE_PUBLISHED, time, count, account, service, channel, size, **attrs)


def delivered_event(
    time: str | int,
    count: int,
    *,
    account: str = "acct-1",
    service: str = "svc-1",
    channel: str = "news",
    size: int = 100,
    **attrs: Any,
) -> dict[str, Any]:
    """Build a ``fanout.message.delivered`` event (``size`` is the ``bytes`` data field)."""
    return _message_event(EventType.MESSAGE_DELIVERED, time, count, account, service, channel, size, **attrs)


def parsed(dicts: Iterable[Any]) -> list[MeteringEvent]:
    """Parse CloudEvent dicts with ``parse_event``; a rejection here is a bug in the test data."""
    events = []
    for raw in dicts:
        result = parse_event(raw)
        if not isinstance(result, MeteringEvent):
            raise ValueError(f"test data broke the event contract: {result.reason}: {raw!r}")
        events.append(result)
    return events


def rollup_rows(events: Iterable[MeteringEvent]) -> list[tuple[Any, ...]]:
    """The connection events as ``metering.rollups.EVENT_ROW`` rows (the row number stands in for the id)."""
    return [
        (
            e.account_id, e.service_id, e.connection_id, e.type.value, e.time_us, e.id, e.source, e.bytes_out,
            e.transport, n,
        )
        for n, e in enumerate(events)
        if e.connection_id is not None
    ]  # fmt: skip


# --- Hypothesis strategies -------------------------------------------------------------------

MONTH_BOUNDARIES = (
    utc_micros("2025-12-01T00:00:00Z"),
    utc_micros("2026-01-01T00:00:00Z"),  # a year boundary too
    utc_micros("2026-02-01T00:00:00Z"),
    utc_micros("2026-03-01T00:00:00Z"),  # after a 28-day February
    utc_micros("2028-03-01T00:00:00Z"),  # after a leap day
)
WHOLE_MONTH = (utc_micros("2026-02-01T00:00:00Z"), utc_micros("2026-03-01T00:00:00Z"))


# Strategies are built once: rebuilding them inside every draw costs most of the run time.
_NEAR_BOUNDARY = st.sampled_from(MONTH_BOUNDARIES).flatmap(
    lambda b: st.integers(b - 10 * MICROS_PER_MINUTE, b + 10 * MICROS_PER_MINUTE)
)
_INSTANTS = st.one_of(_NEAR_BOUNDARY, _NEAR_BOUNDARY, st.integers(WHOLE_MONTH[0], WHOLE_MONTH[1] - 1))
_OFFSETS = st.sampled_from(OFFSETS)
_NANOS = st.integers(0, 999)
_FRACTION_STYLES = st.sampled_from((0, 6, 9))  # 0: the shortest exact fraction (none, ms or µs)
_ONE_IN_FOUR = st.integers(0, 3).map(lambda n: n == 0)
_ONE_IN_FIVE = st.integers(0, 4).map(lambda n: n == 0)
_ONE_IN_TEN = st.integers(0, 9).map(lambda n: n == 0)
# Gaps are at least 1 µs: two different cumulative reports at the same instant would be
# ordered by id, which a real broker never relies on.
_SHORT_GAPS = st.one_of(st.integers(1, 2 * MICROS_PER_SECOND), st.integers(1, 2 * MICROS_PER_MINUTE))
_LONG_GAPS = st.integers(1, 10 * MICROS_PER_DAY)
_SKEWS = st.integers(1, 2 * MICROS_PER_MINUTE)
_GROWTH = st.one_of(st.integers(0, 2_000), st.integers(0, 10**9))
_AFTER_RESET = st.integers(0, 5_000)
_COUNTS = st.one_of(st.integers(0, 50), st.integers(0, 10**9))


def instants() -> st.SearchStrategy[int]:
    """UTC microseconds, mostly within 10 minutes of a month boundary, sometimes anywhere in a month."""
    return _INSTANTS


def _shortest_exact_digits(time_us: int) -> int:
    fraction = time_us % MICROS_PER_SECOND
    return 0 if fraction == 0 else 3 if fraction % 1000 == 0 else 6


@st.composite
def rfc3339_times(draw: st.DrawFn, time_us: int) -> str:
    """RFC 3339 renderings of exactly ``time_us``: any offset, 0 to 9 fraction digits."""
    style = draw(_FRACTION_STYLES)
    return format_time(time_us, draw(_OFFSETS), style or _shortest_exact_digits(time_us), draw(_NANOS))


@st.composite
def _counter_values(draw: st.DrawFn, n: int, resets: bool) -> list[int]:
    values, value = [], 0
    for _ in range(n):
        value = draw(_AFTER_RESET) if resets and draw(_ONE_IN_TEN) else value + draw(_GROWTH)
        values.append(value)
    return values


@st.composite
def connection_traces(
    draw: st.DrawFn,
    account: str = "acct-1",
    service: str = "svc-1-a",
    connection: str = "conn-1",
    *,
    resets: bool = True,
    skew: bool = True,
    lose_open: bool | None = None,
    lose_close: bool | None = None,
) -> list[dict[str, Any]]:
    """One connection's events (at least one): open, alives, close, in time order, in random offsets.

    Bytes are cumulative and non-decreasing, with an occasional counter reset unless
    ``resets`` is False. The open or the close may be lost (None = let Hypothesis choose);
    with ``skew`` the close is sometimes stamped before the open (then no alive is sent).
    Sometimes the gaps are days long, so the connection spans a whole month.
    """
    node = draw(st.sampled_from(NODES))
    start = draw(_INSTANTS)
    gaps = _LONG_GAPS if draw(_ONE_IN_FIVE) else _SHORT_GAPS
    skewed = skew and draw(_ONE_IN_TEN)
    n_alive = 0 if skewed else draw(st.integers(0, 6))
    times = [start]
    for _ in range(n_alive + 1):
        times.append(times[-1] + draw(gaps))
    if skewed:
        times[-1] = start - draw(_SKEWS)  # close stamped before the open
    bytes_out = draw(_counter_values(n_alive + 1, resets))
    bytes_in = draw(_counter_values(n_alive + 1, resets=False))
    ids = (f"{connection}-{i}" for i in itertools.count())
    where = {"account": account, "service": service, "connection": connection, "source": node}
    # A node stamps all its events the same way: one offset and fraction style per trace.
    offset, style, nanos = draw(_OFFSETS), draw(_FRACTION_STYLES), draw(_NANOS)

    def when(time_us: int) -> str:
        return format_time(time_us, offset, style or _shortest_exact_digits(time_us), nanos)

    events = [open_event(when(start), transport=draw(st.sampled_from(TRANSPORTS)), id=next(ids), **where)]
    for time_us, out, inn in zip(times[1:-1], bytes_out, bytes_in, strict=False):
        events.append(alive_event(when(time_us), out, inn, id=next(ids), **where))
    reason = draw(st.sampled_from(CLOSE_REASONS))
    events.append(close_event(when(times[-1]), bytes_out[-1], bytes_in[-1], reason, id=next(ids), **where))
    lost_open = draw(_ONE_IN_FOUR) if lose_open is None else lose_open
    lost_close = draw(_ONE_IN_FOUR) if lose_close is None else lose_close
    if lost_open and lost_close and n_alive == 0:
        lost_open = False  # a connection nobody saw at all is not a connection
    return events[1 if lost_open else 0 : -1 if lost_close else None]


@st.composite
def message_events(draw: st.DrawFn) -> dict[str, Any]:
    """One published or delivered event for a random account and service."""
    account = draw(st.sampled_from(ACCOUNTS))
    build = draw(st.sampled_from((published_event, delivered_event)))
    event: dict[str, Any] = build(
        draw(rfc3339_times(draw(_INSTANTS))),
        draw(_COUNTS),
        account=account,
        service=draw(st.sampled_from(SERVICES[account])),
        channel=draw(st.sampled_from(CHANNELS)),
        size=draw(st.integers(0, 10**6)),
        source=draw(st.sampled_from(NODES)),
        id="pending",
    )
    return event


@st.composite
def event_sets(draw: st.DrawFn, max_connections: int = 4, max_messages: int = 6) -> list[dict[str, Any]]:
    """A set of distinct events for a few accounts, services and connections; (source, id) is unique."""
    events: list[dict[str, Any]] = []
    for i in range(draw(st.integers(0, max_connections))):
        account = draw(st.sampled_from(ACCOUNTS))
        service = draw(st.sampled_from(SERVICES[account]))
        events += draw(connection_traces(account, service, f"conn-{i}"))
    events += draw(st.lists(message_events(), max_size=max_messages))
    per_node: Counter[str] = Counter()
    for event in events:  # each node numbers its own events, so the same id recurs across nodes
        per_node[event["source"]] += 1
        event["id"] = f"evt-{per_node[event['source']]:04d}"
    return events


# --- a seeded, realistic trace (no Hypothesis) ----------------------------------------------

TRACE_START = utc_micros("2026-01-31T20:00:00Z")
TRACE_END = utc_micros("2026-02-01T04:00:00Z")  # connections and messages start in this window


def generate_trace(
    seed: int,
    n_events: int,
    accounts: int = 3,
    services_per_account: int = 2,
    *,
    duplicate_rate: float = 0.0,
) -> list[dict[str, Any]]:
    """Return exactly ``n_events`` CloudEvent dicts, in a plausible arrival order, for ``seed``.

    Connections start between ``TRACE_START`` and ``TRACE_END`` (across the January/February
    boundary), send ``alive`` every ~60 s with cumulative bytes (rare counter resets) and
    close; about 5% lose their open, 10% their close, 3% are stamped closed before they
    opened. Publishes fan out to delivered events on several nodes. Times use random UTC
    offsets and fraction lengths. Arrival order is time plus a random delay (mostly under
    2 s, some minutes, a few hours). Ids are ``s<seed>-e<n>``: unique within the trace and
    across seeds; with ``duplicate_rate`` > 0 that share of the dicts are resends of earlier
    events (same source and id). Same seed, same list.
    """
    rng = random.Random(seed)
    services = [
        (f"acct-{a}", f"svc-{a}-{s}") for a in range(1, accounts + 1) for s in range(1, services_per_account + 1)
    ]
    n_duplicates = round(n_events * duplicate_rate)
    timed: list[tuple[int, dict[str, Any]]] = []
    counter = itertools.count()
    while len(timed) < n_events - n_duplicates:
        account, service = rng.choice(services)
        if rng.random() < 0.3:
            batch = _trace_connection(rng, account, service, f"conn-{seed}-{next(counter)}")
        else:
            batch = _trace_messages(rng, account, service)
        timed += batch[: n_events - n_duplicates - len(timed)]  # a cut-short connection lost its close
    events = [_render(rng, seed, n, time_us, raw) for n, (time_us, raw) in enumerate(timed)]
    arrival = [time_us + _delivery_delay(rng) for time_us, _ in timed]
    for _ in range(n_duplicates):  # a resend arrives after the original, up to 10 minutes later
        n = rng.randrange(len(timed))
        events.append({**events[n], "data": dict(events[n]["data"])})
        arrival.append(arrival[n] + rng.randrange(1, 10 * MICROS_PER_MINUTE))
    return [event for _, _, event in sorted(zip(arrival, range(len(events)), events, strict=True))]


def _delivery_delay(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.9:
        return rng.randrange(2 * MICROS_PER_SECOND)
    if roll < 0.99:
        return rng.randrange(5 * MICROS_PER_MINUTE)
    return rng.randrange(2 * MICROS_PER_HOUR)


def _trace_duration(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.6:
        return rng.randrange(10 * MICROS_PER_MINUTE)
    if roll < 0.95:
        return rng.randrange(10 * MICROS_PER_MINUTE, 2 * MICROS_PER_HOUR)
    return rng.randrange(2 * MICROS_PER_HOUR, 12 * MICROS_PER_HOUR)


def _trace_connection(
    rng: random.Random, account: str, service: str, connection: str
) -> list[tuple[int, dict[str, Any]]]:
    source = rng.choice(NODES)
    start = rng.randrange(TRACE_START, TRACE_END)
    end = start + _trace_duration(rng)
    ids = {"account_id": account, "service_id": service, "connection_id": connection}
    batch = [
        (
            start,
            {"source": source, "type": EventType.CONNECTION_OPEN, "data": {**ids, "transport": rng.choice(TRANSPORTS)}},
        )
    ]
    bytes_out = bytes_in = 0
    time_us = start + rng.randrange(55 * MICROS_PER_SECOND, 62 * MICROS_PER_SECOND)
    while time_us < end:
        bytes_out = rng.randrange(5_000) if rng.random() < 0.02 else bytes_out + rng.randrange(50_000)
        bytes_in += rng.randrange(2_000)
        data = {**ids, "bytes_out": bytes_out, "bytes_in": bytes_in}
        batch.append((time_us, {"source": source, "type": EventType.CONNECTION_ALIVE, "data": data}))
        time_us += rng.randrange(58 * MICROS_PER_SECOND, 62 * MICROS_PER_SECOND)
    if rng.random() < 0.03:
        end, batch = start - rng.randrange(1, 5 * MICROS_PER_SECOND), batch[:1]  # close stamped before the open
    close = {**ids, "bytes_out": bytes_out, "bytes_in": bytes_in}
    reason = rng.choice(CLOSE_REASONS)
    if reason is not None:
        close["reason"] = reason
    batch.append((end, {"source": source, "type": EventType.CONNECTION_CLOSE, "data": close}))
    if rng.random() < 0.05:
        batch = batch[1:]  # the open was lost
    if rng.random() < 0.10 and len(batch) > 1:
        batch = batch[:-1]  # the close was lost
    return batch


def _trace_messages(rng: random.Random, account: str, service: str) -> list[tuple[int, dict[str, Any]]]:
    time_us = rng.randrange(TRACE_START, TRACE_END)
    where = {"account_id": account, "service_id": service, "channel": rng.choice(CHANNELS)}
    size = rng.randrange(50, 5_000)
    published = {**where, "count": rng.randint(1, 5), "bytes": size}
    batch = [(time_us, {"source": rng.choice(NODES), "type": EventType.MESSAGE_PUBLISHED, "data": published})]
    for node in rng.sample(NODES, rng.randint(1, len(NODES))):
        delivered = {**where, "count": rng.randrange(200), "bytes": size}
        delay = rng.randrange(1, 500_000)
        batch.append((time_us + delay, {"source": node, "type": EventType.MESSAGE_DELIVERED, "data": delivered}))
    return batch


def _render(rng: random.Random, seed: int, number: int, time_us: int, raw: dict[str, Any]) -> dict[str, Any]:
    roll = rng.random()
    digits = 9 if roll < 0.2 else 0 if roll < 0.25 and time_us % MICROS_PER_SECOND == 0 else 6
    time = format_time(time_us, rng.choice(OFFSETS), digits, rng.randrange(1000))
    return cloud_event(raw["type"], time, raw["data"], source=raw["source"], id=f"s{seed}-e{number:07d}")
