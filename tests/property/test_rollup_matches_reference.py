"""The vectorised rollup (pandas) equals the plain-Python reference rules, for any set of events."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from metering.domain.events import MeteringEvent
from metering.domain.sessions import group_connections, session_of
from metering.domain.usage import connection_days
from metering.rollups import (
    STATE_COLUMNS,
    ConnectionDayRow,
    ConnectionState,
    connection_rollup,
    fold_connections,
    late_connections,
    usage_deltas,
)
from tests.strategies import event_sets, parsed, rollup_rows


def _reference(events: list[MeteringEvent]) -> list[dict[str, Any]]:
    return sorted(
        (
            {
                "account_id": part.key.account_id,
                "service_id": part.key.service_id,
                "connection_id": part.key.connection_id,
                "day": part.day,
                "connection_minutes": part.connection_minutes,
                "bytes_out": part.bytes_out,
            }
            for key, group in group_connections(events).items()
            for part in connection_days(key, group)
        ),
        key=lambda r: (r["account_id"], r["service_id"], r["connection_id"], r["day"]),
    )


def _sorted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (r["account_id"], r["service_id"], r["connection_id"], r["day"]))


@settings(max_examples=300, deadline=None)
@given(event_sets(max_connections=6, max_messages=2), st.randoms(use_true_random=False))
def test_vectorised_connection_days_equal_the_plain_python_reference(
    dicts: list[dict[str, Any]], rng: random.Random
) -> None:
    events = parsed(dicts)
    shuffled_with_repeats = events + rng.sample(events, len(events) // 3)
    rng.shuffle(shuffled_with_repeats)

    sessions, days = connection_rollup(rollup_rows(shuffled_with_repeats))

    assert _sorted(days) == _reference(events)
    expected_sessions = {
        (k.account_id, k.service_id, k.connection_id): (s.start_us, s.end_us, s.last_seen_us, s.closed, s.transport)
        for k, s in ((k, session_of(k, g)) for k, g in group_connections(events).items())
    }
    assert {
        (r["account_id"], r["service_id"], r["connection_id"]): (
            r["start_us"],
            r["end_us"],
            r["last_seen_us"],
            r["closed"],
            r["transport"],
        )
        for r in sessions
    } == expected_sessions
    assert all(r["billable_minutes"] >= 1 for r in sessions)


@settings(max_examples=100, deadline=None)
@given(event_sets(max_connections=5, max_messages=0), event_sets(max_connections=5, max_messages=0))
def test_usage_deltas_turn_old_connection_days_into_new_ones(
    before: list[dict[str, Any]], after: list[dict[str, Any]]
) -> None:
    old = [ConnectionDayRow(**r) for r in _reference(parsed(before))]
    new = _reference(parsed(after))

    deltas = usage_deltas(old, new)

    totals: dict[tuple[Any, ...], list[int]] = {}
    for a, s, _, d, m, b in old:
        row = totals.setdefault((a, s, d), [0, 0])
        row[0] += m
        row[1] += b
    for delta in deltas:
        row = totals.setdefault((delta["account_id"], delta["service_id"], delta["day"]), [0, 0])
        row[0] += delta["connection_minutes"]
        row[1] += delta["bytes_out"]
    expected: dict[tuple[Any, ...], list[int]] = {}
    for r in new:
        row = expected.setdefault((r["account_id"], r["service_id"], r["day"]), [0, 0])
        row[0] += r["connection_minutes"]
        row[1] += r["bytes_out"]
    assert {k: v for k, v in totals.items() if v != [0, 0]} == {k: v for k, v in expected.items() if v != [0, 0]}


def _fold_in_chunks(rows: list[tuple[Any, ...]], cuts: list[int]) -> list[dict[str, Any]]:
    """Fold the rows chunk by chunk as the rollup pass does: state and day rows carried over,
    late connections recomputed from every row seen so far."""
    states: dict[Any, Any] = {}
    days: list[dict[str, Any]] = []
    seen: list[tuple[Any, ...]] = []
    for a, b in zip([0, *cuts], [*cuts, len(rows)], strict=True):
        chunk = rows[a:b]
        if not chunk:
            continue
        seen += chunk
        keys = {r[:3] for r in chunk}
        mine = {k: v for k, v in states.items() if k in keys}
        late = late_connections(chunk, mine)
        chunk = [r for r in chunk if r[:3] not in late] + [r for r in seen if r[:3] in late]
        mine = {k: v for k, v in mine.items() if k not in late}
        base = [
            ConnectionDayRow(**d) for d in days if (d["account_id"], d["service_id"], d["connection_id"]) in keys - late
        ]
        sessions, new_days = fold_connections(chunk, mine, base)
        days = [d for d in days if (d["account_id"], d["service_id"], d["connection_id"]) not in keys] + new_days
        for s in sessions:
            states[(s["account_id"], s["service_id"], s["connection_id"])] = ConnectionState(
                *(s[c] for c in STATE_COLUMNS)
            )
    return days


@settings(max_examples=300, deadline=None)
@given(event_sets(max_connections=4, max_messages=0), st.randoms(use_true_random=False), st.integers(1, 6))
def test_folding_events_chunk_by_chunk_equals_one_pass_over_all_of_them(
    dicts: list[dict[str, Any]], rng: random.Random, chunks: int
) -> None:
    events = parsed(dicts)
    rng.shuffle(events)
    rows = rollup_rows(events)
    cuts = sorted(rng.randint(0, len(rows)) for _ in range(chunks - 1))

    assert _sorted(_fold_in_chunks(rows, cuts)) == _reference(events)
