"""Vectorised rollups: connection sessions and per-day usage for many connections at once.

pandas stays inside this module: it takes plain rows and returns plain integer
records. The rules are DESIGN.md's, exactly as the plain-Python reference in
``metering/domain/usage.py`` states them; a property test holds the two equal.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def connection_rollup(rows: Sequence[Sequence[Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return (sessions, connection-day rows) for every connection in ``rows`` (columns ``EVENT_ROW``)."""
    if not rows:
        return [], []
    events = pd.DataFrame(list(rows), columns=EVENT_ROW).drop_duplicates(["source", "event_id"])
    events["time_us"] = events["time_us"].astype("int64")
    sessions = _sessions(events)
    days = _minutes_by_day(sessions).merge(_bytes_by_day(events), on=[*KEY, "day_number"], how="outer")
    days = days.fillna(0)
    days = days[(days["connection_minutes"] > 0) | (days["bytes_out"] > 0)]
    return _session_records(sessions), _day_records(days)


def _sessions(events: pd.DataFrame) -> pd.DataFrame:
    """Start, end, last seen, closed and minutes per connection (DESIGN.md "Start and end")."""
    grouped = events.groupby(KEY, sort=False)["time_us"]
    sessions = pd.DataFrame({"first_seen": grouped.min(), "last_seen_us": grouped.max()})
    opens = events[events["type"] == _OPEN].sort_values(["time_us", "event_id", "source"])
    first_open = opens.drop_duplicates(KEY).set_index(KEY)[["time_us", "transport"]]
    sessions = sessions.join(first_open.rename(columns={"time_us": "open_us"}))
    closes = events[events["type"] == _CLOSE].groupby(KEY, sort=False)["time_us"].min().rename("close_us")
    sessions = sessions.join(closes)
    sessions["start_us"] = sessions["open_us"].fillna(sessions["first_seen"]).astype("int64")
    sessions["closed"] = sessions["close_us"].notna()
    sessions["end_us"] = sessions["close_us"].fillna(sessions["last_seen_us"]).astype("int64")
    duration = (sessions["end_us"] - sessions["start_us"]).clip(lower=0)
    sessions["billable_minutes"] = np.maximum(1, -(-duration // MICROS_PER_MINUTE))
    return sessions.reset_index()


def _minutes_by_day(sessions: pd.DataFrame) -> pd.DataFrame:
    """Explode each connection over the UTC days its minutes begin in, counting minutes per day."""
    start = sessions["start_us"].to_numpy()
    minutes = sessions["billable_minutes"].to_numpy()
    first_day = start // MICROS_PER_DAY
    last_day = (start + (minutes - 1) * MICROS_PER_MINUTE) // MICROS_PER_DAY
    spans = last_day - first_day + 1
    row = np.repeat(np.arange(len(sessions)), spans)
    offset = np.arange(len(row)) - np.repeat(np.cumsum(spans) - spans, spans)
    day_number = first_day[row] + offset
    counts = _minutes_beginning_in(start[row], minutes[row], day_number * MICROS_PER_DAY)
    exploded = sessions[KEY].iloc[row].reset_index(drop=True)
    exploded["day_number"] = day_number
    exploded["connection_minutes"] = counts
    return exploded


def _minutes_beginning_in(start: np.ndarray, minutes: np.ndarray, day_start: np.ndarray) -> np.ndarray:
    """Vector form of ``metering.domain.minutes.minutes_beginning_in`` for whole days."""
    first = np.clip(-((start - day_start) // MICROS_PER_MINUTE), 0, minutes)
    past_last = np.clip(-((start - day_start - MICROS_PER_DAY) // MICROS_PER_MINUTE), 0, minutes)
    counts: np.ndarray = past_last - first
    return counts


def _bytes_by_day(events: pd.DataFrame) -> pd.DataFrame:
    """Counter increases between consecutive reports (from 0 at the open), summed on the later report's day."""
    reports = events[events["bytes_out"].notna() & (events["type"] != _OPEN)].copy()
    reports["value"] = reports["bytes_out"].astype("int64")
    reports = reports.sort_values([*KEY, "time_us", "event_id", "source", "value"])
    previous = reports.groupby(KEY, sort=False)["value"].shift(fill_value=0)
    value = reports["value"]
    reports["bytes_out"] = value.where(value < previous, value - previous)
    reports["day_number"] = reports["time_us"] // MICROS_PER_DAY
    return reports.groupby([*KEY, "day_number"], as_index=False)[["bytes_out"]].sum()


def _session_records(sessions: pd.DataFrame) -> list[dict[str, Any]]:
    columns = [*KEY, "transport", "start_us", "end_us", "last_seen_us", "closed", "billable_minutes"]
    frame = sessions[columns].astype(object).where(sessions[columns].notna(), None)
    records = frame.to_dict("records")
    for record in records:
        for name in ("start_us", "end_us", "last_seen_us", "billable_minutes"):
            record[name] = int(record[name])
        record["closed"] = bool(record["closed"])
    return records  # type: ignore[return-value]


def _day_records(days: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {
            "account_id": a,
            "service_id": s,
            "connection_id": c,
            "day": date.fromordinal(_EPOCH_ORDINAL + int(n)),
            "connection_minutes": int(m),
            "bytes_out": int(b),
        }
        for a, s, c, n, m, b in days[[*KEY, "day_number", "connection_minutes", "bytes_out"]].itertuples(
            index=False, name=None
        )
    ]


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
