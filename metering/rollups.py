"""Vectorised rollups: connection sessions and per-day usage for many connections at once.

numpy and pandas stay inside this module: it takes plain rows and returns plain integer
records. The rules are DESIGN.md's, exactly as the plain-Python reference in
``metering/domain/usage.py`` states them; a property test holds the two equal.

Every group, sort and sum runs on one integer code per connection: strings are
factorized once on the way in and looked up again only for the output records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from metering.domain.events import EventType
from metering.domain.instants import MICROS_PER_DAY, MICROS_PER_MINUTE

EVENT_ROW = [
    "account_id",
    "service_id",
    "connection_id",
    "type",
    "time_us",
    "event_id",
    "source",
    "bytes_out",
    "transport",
]
KEY = ["account_id", "service_id", "connection_id"]
_OPEN, _CLOSE = EventType.CONNECTION_OPEN.value, EventType.CONNECTION_CLOSE.value
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_NONE = np.iinfo(np.int64).max


@dataclass(frozen=True)
class _Events:
    """Distinct connection events as arrays; ``conn`` numbers each row's connection 0..n-1."""

    conn: np.ndarray
    keys: list[tuple[str, str, str]]
    time_us: np.ndarray
    is_open: np.ndarray
    is_close: np.ndarray
    event_id: np.ndarray
    source: np.ndarray
    bytes_out: np.ndarray  # float: NaN where the event carries no counter
    transport: np.ndarray


def connection_rollup(rows: Sequence[Sequence[Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return (sessions, connection-day rows) for every connection in ``rows`` (columns ``EVENT_ROW``)."""
    if not rows:
        return [], []
    events = _events(pd.DataFrame(list(rows), columns=EVENT_ROW))
    start, end, last_seen, closed, transport = _sessions(events)
    minutes = np.maximum(1, -(-np.maximum(end - start, 0) // MICROS_PER_MINUTE))
    day_conn, day_number, day_minutes, day_bytes = _days(events, start, minutes)
    sessions = [
        dict(zip(KEY, key, strict=True))
        | {"transport": tr, "start_us": s, "end_us": e, "last_seen_us": ls, "closed": c, "billable_minutes": m}
        for key, tr, s, e, ls, c, m in zip(
            events.keys, transport.tolist(), start.tolist(), end.tolist(), last_seen.tolist(), closed.tolist(),
            minutes.tolist(), strict=True,
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


def _events(frame: pd.DataFrame) -> _Events:
    """Drop repeated (source, id) pairs and number the connections."""
    source_code, sources = pd.factorize(frame["source"])
    id_code, _ = pd.factorize(frame["event_id"])
    repeated = pd.Series(id_code.astype(np.int64) * max(len(sources), 1) + source_code).duplicated().to_numpy()
    if repeated.any():
        frame = frame[~repeated].reset_index(drop=True)
    conn, keys = pd.factorize(pd.MultiIndex.from_frame(frame[KEY]))
    kind = frame["type"].to_numpy(object)
    return _Events(
        conn=conn.astype(np.int64),
        keys=list(keys),
        time_us=frame["time_us"].to_numpy(np.int64),
        is_open=kind == _OPEN,
        is_close=kind == _CLOSE,
        event_id=frame["event_id"].to_numpy(object),
        source=frame["source"].to_numpy(object),
        bytes_out=frame["bytes_out"].to_numpy(np.float64, na_value=np.nan),
        transport=frame["transport"].to_numpy(object),
    )


def _sessions(ev: _Events) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Start, end, last seen, closed and transport per connection (DESIGN.md "Start and end")."""
    n = len(ev.keys)
    by_conn = pd.Series(ev.time_us).groupby(ev.conn)
    first_seen, last_seen = by_conn.min().to_numpy(), by_conn.max().to_numpy()
    opens = _ordered(ev, np.flatnonzero(ev.is_open))
    first_open = opens[_group_heads(ev.conn[opens])]
    start = first_seen.copy()
    start[ev.conn[first_open]] = ev.time_us[first_open]
    transport = np.full(n, None, dtype=object)
    transport[ev.conn[first_open]] = ev.transport[first_open]
    close = np.full(n, _NONE)
    np.minimum.at(close, ev.conn[ev.is_close], ev.time_us[ev.is_close])
    closed = close != _NONE
    return start, np.where(closed, close, last_seen), last_seen, closed, transport


def _days(ev: _Events, start: np.ndarray, minutes: np.ndarray) -> tuple[np.ndarray, ...]:
    """(connection, day number, minutes, bytes) for each connection-day with minutes or bytes."""
    minute_conn, minute_day, minute_count = split_minutes_by_day(start, minutes)
    byte_conn, byte_day, byte_count = _bytes_by_day(ev)
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


def _bytes_by_day(ev: _Events) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counter increases between consecutive reports (from 0 at the open), on the later report's day."""
    reports = _ordered(ev, np.flatnonzero(~np.isnan(ev.bytes_out) & ~ev.is_open))
    value = ev.bytes_out[reports].astype(np.int64)
    previous = np.concatenate([[0], value[:-1]])
    previous[_group_heads(ev.conn[reports])] = 0
    increase = np.where(value < previous, value, value - previous)
    return ev.conn[reports], ev.time_us[reports] // MICROS_PER_DAY, increase


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


def usage_deltas(old_days: Sequence[Sequence[Any]], new_days: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (account, service, day): new connection minutes and bytes minus the old, non-zero only."""
    columns = [*KEY, "day", "connection_minutes", "bytes_out"]
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
