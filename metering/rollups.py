"""Vectorised rollups: connection sessions and per-day usage for many connections at once.

numpy and pandas stay inside this module: it takes plain rows and returns plain integer
records. The rules are DESIGN.md's, exactly as the plain-Python reference in
``metering/domain/usage.py`` states them; a property test holds the two equal.

Every group, sort and sum runs on one integer code per connection: strings are
factorized once on the way in and looked up again only for the output records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from kernel.instants import MICROS_PER_DAY, MICROS_PER_MINUTE
from metering.domain.events import EventType

# An event row's columns. Event rows stay plain tuples: they are the bulk of a pass, and building
# a NamedTuple of a claimed row took 930 against 120 ns (see ``metering.domain.event_rows.EventRow``).
EVENT_ROW = [
    "account_id", "service_id", "connection_id", "type", "time_us", "event_id", "source", "bytes_out",
    "transport", "id",
]  # fmt: skip
KEY = ["account_id", "service_id", "connection_id"]
_TYPE, _TIME, _EVENT_ID, _SOURCE, _BYTES_OUT = (
    EVENT_ROW.index(column) for column in ("type", "time_us", "event_id", "source", "bytes_out")
)
_OPEN, _CLOSE = EventType.CONNECTION_OPEN.value, EventType.CONNECTION_CLOSE.value
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_NONE = np.iinfo(np.int64).max

Key = tuple[str, str, str]


def event_key(row: Sequence[Any]) -> Key:
    """The connection an ``EVENT_ROW`` row belongs to (its first columns are ``KEY``)."""
    return (row[0], row[1], row[2])


class ConnectionState(NamedTuple):
    """What a session keeps so that new events can be folded in without re-reading old ones."""

    first_seen_us: int
    last_seen_us: int
    open_us: int | None
    open_event_id: str | None
    open_source: str | None
    transport: str | None
    close_us: int | None
    report_time_us: int | None
    report_event_id: str | None
    report_source: str | None
    report_bytes_out: int | None


STATE_COLUMNS = list(ConnectionState._fields)
# A connection without stored state: nothing seen, opened, closed or reported yet.
_NO_STATE = ConnectionState(_NONE, -_NONE, None, None, None, None, None, None, None, None, None)


class ConnectionDayRow(NamedTuple):
    """One connection's stored contribution to one UTC day (a ``connection_day`` row)."""

    account_id: str
    service_id: str
    connection_id: str
    day: date
    connection_minutes: int
    bytes_out: int

    @property
    def key(self) -> Key:
        return (self.account_id, self.service_id, self.connection_id)


class _Report(NamedTuple):
    """A connection's last counter report: ordered by (time, id, source), carrying its ``bytes_out``."""

    time_us: int | None
    event_id: str | None
    source: str | None
    bytes_out: int | None


@dataclass(frozen=True)
class _Events:
    """Distinct connection events as arrays; ``conn`` numbers each row's connection 0..n-1."""

    conn: np.ndarray
    keys: list[Key]
    time_us: np.ndarray
    is_open: np.ndarray
    is_close: np.ndarray
    event_id: np.ndarray
    source: np.ndarray
    bytes_out: np.ndarray  # float: NaN where the event carries no counter
    transport: np.ndarray


def connection_rollup(rows: Sequence[Sequence[Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return (sessions, connection-day rows) for every connection in ``rows`` (columns ``EVENT_ROW``)."""
    return fold_connections(rows, {}, [])


def fold_connections(
    rows: Sequence[Sequence[Any]], states: Mapping[Key, ConnectionState], base_days: Sequence[ConnectionDayRow]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Fold new events into connections' stored state; return their new sessions and connection-day rows.

    ``states`` maps a connection to its stored state (absent: a connection seen for the first
    time, or one being recomputed from all its events); ``base_days`` are the stored connection-day
    rows whose bytes the new increases add to. A connection's new counter reports must all sort
    after its stored last report (``late_connections`` finds those that do not).
    Folding events one batch at a time gives exactly what one pass over all of them gives.
    """
    if not rows:
        return [], []
    events = _events(pd.DataFrame(list(rows), columns=EVENT_ROW))
    state = _State.of(events.keys, states)
    first_seen, last_seen, close = _merge_seen(events, state)
    open_at, open_id, open_source, transport = _earliest_open(events, state)
    start = np.where(open_at != _NONE, open_at, first_seen)
    closed = close != _NONE
    end = np.where(closed, close, last_seen)
    minutes = np.maximum(1, -(-np.maximum(end - start, 0) // MICROS_PER_MINUTE))
    report, increases = _fold_reports(events, state)
    day_conn, day_number, day_minutes, day_bytes = _days(events, start, minutes, increases, base_days)
    sessions = [
        dict(zip(KEY, key, strict=True))
        | {
            "transport": tr, "start_us": s, "end_us": e, "last_seen_us": ls, "closed": c, "billable_minutes": m,
            "first_seen_us": fs, "open_us": None if o == _NONE else o, "open_event_id": oi, "open_source": osrc,
            "close_us": None if cl == _NONE else cl, "report_time_us": rt, "report_event_id": ri,
            "report_source": rs, "report_bytes_out": rb,
        }
        for key, tr, s, e, ls, c, m, fs, o, oi, osrc, cl, (rt, ri, rs, rb) in zip(
            events.keys, transport.tolist(), start.tolist(), end.tolist(), last_seen.tolist(), closed.tolist(),
            minutes.tolist(), first_seen.tolist(), open_at.tolist(), open_id.tolist(), open_source.tolist(),
            close.tolist(), report, strict=True,
        )
    ]  # fmt: skip
    dates = {n: date.fromordinal(_EPOCH_ORDINAL + n) for n in set(day_number.tolist())}
    days = [
        dict(zip(KEY, events.keys[c], strict=True)) | {"day": dates[n], "connection_minutes": m, "bytes_out": b}
        for c, n, m, b in zip(
            day_conn.tolist(), day_number.tolist(), day_minutes.tolist(), day_bytes.tolist(), strict=True
        )
    ]
    return sessions, days


def late_connections(rows: Sequence[Sequence[Any]], states: Mapping[Key, ConnectionState]) -> set[Key]:
    """Connections with a new counter report that sorts before the last report already folded.

    Their increases cannot be folded on top (the report belongs in the middle of the sequence),
    so the caller recomputes them from all their events.
    """
    late: set[Key] = set()
    for row in rows:
        key = event_key(row)
        stored = states.get(key)
        if stored is None or stored.report_time_us is None or row[_TYPE] == _OPEN or row[_BYTES_OUT] is None:
            continue
        if (row[_TIME], row[_EVENT_ID], row[_SOURCE]) < (
            stored.report_time_us,
            stored.report_event_id,
            stored.report_source,
        ):
            late.add(key)
    return late


@dataclass(frozen=True)
class _State:
    """Stored state aligned with the connection numbering; ``_NONE`` or None where absent."""

    first_seen: np.ndarray
    last_seen: np.ndarray
    open_at: np.ndarray
    open_id: np.ndarray
    open_source: np.ndarray
    transport: np.ndarray
    close: np.ndarray
    report: list[_Report]

    @classmethod
    def of(cls, keys: list[Key], states: Mapping[Key, ConnectionState]) -> _State:
        if not states:
            columns = {name: [value] * len(keys) for name, value in _NO_STATE._asdict().items()}
        else:
            stored = zip(*(states.get(key) or _NO_STATE for key in keys), strict=True)
            columns = dict(zip(STATE_COLUMNS, map(list, stored), strict=True))

        def ints(values: list[Any]) -> np.ndarray:
            return np.array([_NONE if v is None else v for v in values], dtype=np.int64)

        reports = zip(*(columns[f"report_{name}"] for name in _Report._fields), strict=True)
        return cls(
            first_seen=np.array(columns["first_seen_us"], dtype=np.int64),
            last_seen=np.array(columns["last_seen_us"], dtype=np.int64),
            open_at=ints(columns["open_us"]),
            open_id=np.array(columns["open_event_id"], dtype=object),
            open_source=np.array(columns["open_source"], dtype=object),
            transport=np.array(columns["transport"], dtype=object),
            close=ints(columns["close_us"]),
            report=[_Report(*report) for report in reports],
        )


def _events(frame: pd.DataFrame) -> _Events:
    """Drop repeated (source, id) pairs and number the connections."""
    source_code, sources = pd.factorize(frame["source"])
    id_code, _ = pd.factorize(frame["event_id"])
    repeated = pd.Series(id_code.astype(np.int64) * max(len(sources), 1) + source_code).duplicated().to_numpy()
    if repeated.any():
        frame = frame[~repeated].reset_index(drop=True)
    conn, keys = _number_connections(frame)
    kind = frame["type"].to_numpy(object)
    return _Events(
        conn=conn,
        keys=keys,
        time_us=frame["time_us"].to_numpy(np.int64),
        is_open=kind == _OPEN,
        is_close=kind == _CLOSE,
        event_id=frame["event_id"].to_numpy(object),
        source=frame["source"].to_numpy(object),
        bytes_out=frame["bytes_out"].to_numpy(np.float64, na_value=np.nan),
        transport=frame["transport"].to_numpy(object),
    )


def _number_connections(frame: pd.DataFrame) -> tuple[np.ndarray, list[Key]]:
    """Number each row's (account, service, connection) 0..n-1, factorizing each column once."""
    codes, uniques = zip(*(pd.factorize(frame[name]) for name in KEY), strict=True)
    sizes = [max(len(u), 1) for u in uniques]
    combined = (codes[0].astype(np.int64) * sizes[1] + codes[1]) * sizes[2] + codes[2]
    conn, distinct = pd.factorize(combined)
    parts = (distinct // (sizes[1] * sizes[2]), distinct // sizes[2] % sizes[1], distinct % sizes[2])
    columns = (np.asarray(u, dtype=object)[p].tolist() for u, p in zip(uniques, parts, strict=True))
    return conn.astype(np.int64), list(zip(*columns, strict=True))


def _merge_seen(ev: _Events, state: _State) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First seen, last seen and earliest close: the stored values merged with the new events'."""
    by_conn = pd.Series(ev.time_us).groupby(ev.conn)
    first_seen = np.minimum(by_conn.min().to_numpy(), state.first_seen)
    last_seen = np.maximum(by_conn.max().to_numpy(), state.last_seen)
    close = state.close.copy()
    np.minimum.at(close, ev.conn[ev.is_close], ev.time_us[ev.is_close])
    return first_seen, last_seen, close


def _earliest_open(ev: _Events, state: _State) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The earliest open by (time, id, source), stored or new, and its transport (DESIGN.md: the start)."""
    open_at, open_id = state.open_at.copy(), state.open_id.copy()
    open_source, transport = state.open_source.copy(), state.transport.copy()
    opens = _ordered(ev, np.flatnonzero(ev.is_open))
    first = opens[_group_heads(ev.conn[opens])]
    conn = ev.conn[first]
    # Where an open is stored too, the earlier (time, id, source) wins; compare those few in Python.
    both = open_at[conn] != _NONE
    keep_stored = np.zeros(len(first), dtype=bool)
    for i in np.flatnonzero(both).tolist():
        c, row = conn[i], first[i]
        stored = (int(open_at[c]), open_id[c], open_source[c])
        keep_stored[i] = stored < (int(ev.time_us[row]), ev.event_id[row], ev.source[row])
    first, conn = first[~keep_stored], conn[~keep_stored]
    open_at[conn], open_id[conn] = ev.time_us[first], ev.event_id[first]
    open_source[conn], transport[conn] = ev.source[first], ev.transport[first]
    return open_at, open_id, open_source, transport


def _days(
    ev: _Events,
    start: np.ndarray,
    minutes: np.ndarray,
    increases: _Increases,
    base_days: Sequence[ConnectionDayRow],
) -> tuple[np.ndarray, ...]:
    """(connection, day number, minutes, bytes) for each connection-day with minutes or bytes.

    Minutes are split afresh from the (possibly moved) start and end; bytes are the stored
    bytes per day plus the new increases.
    """
    minute_conn, minute_day, minute_count = split_minutes_by_day(start, minutes)
    index = {key: c for c, key in enumerate(ev.keys)}
    base = [(index[r.key], _day_number(r.day), r.bytes_out) for r in base_days if r.bytes_out]
    base_conn, base_day, base_bytes = (
        (np.array(column, dtype=np.int64) for column in zip(*base, strict=True))
        if base
        else (np.zeros(0, np.int64),) * 3
    )
    byte_conn = np.concatenate([increases.conn, base_conn])
    byte_day = np.concatenate([increases.day_number, base_day])
    byte_count = np.concatenate([increases.bytes_out, base_bytes])
    day0 = int(min(minute_day.min(initial=_NONE), byte_day.min(initial=_NONE)))
    span = int(max(minute_day.max(initial=day0), byte_day.max(initial=day0))) - day0 + 1
    summed = (
        pd.DataFrame(
            {
                "key": np.concatenate([minute_conn * span + minute_day - day0, byte_conn * span + byte_day - day0]),
                "minutes": np.concatenate([minute_count, np.zeros(len(byte_count), np.int64)]),
                "bytes": np.concatenate([np.zeros(len(minute_count), np.int64), byte_count]),
            }
        )
        .groupby("key", sort=True)
        .sum()
    )
    summed = summed[(summed["minutes"] > 0) | (summed["bytes"] > 0)]
    key = summed.index.to_numpy(np.int64)
    return key // span, key % span + day0, summed["minutes"].to_numpy(), summed["bytes"].to_numpy()


def _day_number(day: date) -> int:
    return day.toordinal() - _EPOCH_ORDINAL


def split_minutes_by_day(start: np.ndarray, minutes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(connection index, day number, minutes) for each UTC day in which a connection's minutes begin.

    Vector form of ``metering.domain.minutes.minutes_by_day``; months are sums of their days.
    """
    first_day = start // MICROS_PER_DAY
    spans = (start + (minutes - 1) * MICROS_PER_MINUTE) // MICROS_PER_DAY - first_day + 1
    conn = np.repeat(np.arange(len(start)), spans)
    day = first_day[conn] + np.arange(len(conn)) - np.repeat(np.cumsum(spans) - spans, spans)
    return conn, day, minutes_beginning_in(start[conn], minutes[conn], day * MICROS_PER_DAY, MICROS_PER_DAY)


def minutes_beginning_in(start: np.ndarray, minutes: np.ndarray, period_start: np.ndarray, length: int) -> np.ndarray:
    """Vector form of ``metering.domain.minutes.minutes_beginning_in`` for periods of ``length`` µs."""
    first = np.clip(-((start - period_start) // MICROS_PER_MINUTE), 0, minutes)
    past_last = np.clip(-((start - period_start - length) // MICROS_PER_MINUTE), 0, minutes)
    counts: np.ndarray = past_last - first
    return counts


class _Increases(NamedTuple):
    """Counter increases, one per new report: its connection, UTC day number and increase in bytes out."""

    conn: np.ndarray
    day_number: np.ndarray
    bytes_out: np.ndarray


def _fold_reports(ev: _Events, state: _State) -> tuple[list[_Report], _Increases]:
    """Each connection's last report after the fold, and the counter increases of the new reports.

    An increase is the value minus the report before it (the stored last report, else 0 from the
    open), or the whole value after a counter reset; it belongs to the later report's day.
    """
    reports = _ordered(ev, np.flatnonzero(~np.isnan(ev.bytes_out) & ~ev.is_open))
    value = ev.bytes_out[reports].astype(np.int64)
    heads = _group_heads(ev.conn[reports])
    stored = np.array([r.bytes_out or 0 for r in state.report], dtype=np.int64)
    previous = np.concatenate([[0], value[:-1]])
    previous[heads] = stored[ev.conn[reports][heads]]
    increase = np.where(value < previous, value, value - previous)
    last = list(state.report)
    tails = np.concatenate([heads[1:], [True]]) if len(reports) else heads
    for row in reports[tails].tolist():
        last[ev.conn[row]] = _Report(int(ev.time_us[row]), ev.event_id[row], ev.source[row], int(ev.bytes_out[row]))
    return last, _Increases(ev.conn[reports], ev.time_us[reports] // MICROS_PER_DAY, increase)


def _ordered(ev: _Events, rows: np.ndarray) -> np.ndarray:
    """``rows`` sorted by (connection, time, id, source); strings are compared only to break exact ties."""
    rows = rows[np.lexsort((ev.time_us[rows], ev.conn[rows]))]
    conn, time = ev.conn[rows], ev.time_us[rows]
    tied = np.flatnonzero((conn[1:] == conn[:-1]) & (time[1:] == time[:-1]))
    for head in _run_heads(tied).tolist():
        tail = head + 1
        while tail < len(rows) and conn[tail] == conn[head] and time[tail] == time[head]:
            tail += 1
        rows[head:tail] = sorted(rows[head:tail].tolist(), key=lambda r: (ev.event_id[r], ev.source[r]))
    return rows


def _run_heads(tied: np.ndarray) -> np.ndarray:
    """Given positions i where rows i and i+1 tie, the first position of each run of ties."""
    if len(tied) == 0:
        return tied
    heads: np.ndarray = tied[np.concatenate([[True], tied[1:] != tied[:-1] + 1])]
    return heads


def _group_heads(group: np.ndarray) -> np.ndarray:
    """For a sorted group array: True where a new group starts."""
    heads = np.ones(len(group), dtype=bool)
    heads[1:] = group[1:] != group[:-1]
    return heads


def usage_deltas(old_days: Sequence[ConnectionDayRow], new_days: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (account, service, day): new connection minutes and bytes minus the old, non-zero only."""
    columns = list(ConnectionDayRow._fields)
    old = pd.DataFrame(list(old_days), columns=columns)
    new = pd.DataFrame(list(new_days), columns=columns)
    old[["connection_minutes", "bytes_out"]] *= -1
    both = pd.concat([old, new]) if len(old) else new
    if both.empty:
        return []
    summed = both.groupby(["account_id", "service_id", "day"], as_index=False)[
        ["connection_minutes", "bytes_out"]
    ].sum()
    summed = summed[(summed["connection_minutes"] != 0) | (summed["bytes_out"] != 0)]
    return [
        {
            "account_id": a,
            "service_id": s,
            "day": d,
            "connection_minutes": int(m),
            "messages_published": 0,
            "messages_delivered": 0,
            "bytes_out": int(b),
        }
        for a, s, d, m, b in summed.itertuples(index=False, name=None)
    ]
