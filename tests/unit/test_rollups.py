"""The vectorised rollup on hand-made cases the random strategies rarely hit: exact time ties."""

from __future__ import annotations

from datetime import date

from metering.domain.sessions import group_connections
from metering.domain.usage import connection_days
from metering.rollups import connection_rollup
from tests.strategies import alive_event, close_event, open_event, parsed, rollup_rows

AT = "2026-03-01T10:00:00Z"


def reference_bytes(events):
    return {
        part.day: part.bytes_out
        for key, group in group_connections(events).items()
        for part in connection_days(key, group)
    }


def test_reports_at_the_same_instant_are_taken_in_id_order():
    events = parsed(
        [
            open_event("2026-03-01T09:59:00Z", id="a-open"),
            alive_event(AT, 500, id="b-second"),
            alive_event(AT, 100, id="a-first"),
            alive_event("2026-03-01T10:01:00Z", 600, id="c-third"),
        ]
    )

    _, days = connection_rollup(rollup_rows(reversed(events)))

    # In id order: 100, then 500 (+400), then 600 (+100) = 600. The other order would see a reset.
    assert [d["bytes_out"] for d in days] == [600] == list(reference_bytes(events).values())


def test_opens_at_the_same_instant_take_the_transport_of_the_lowest_id():
    events = parsed(
        [
            open_event(AT, transport="websocket", id="z-open"),
            open_event(AT, transport="sse", id="m-open"),
            close_event("2026-03-01T10:00:30Z", 10, id="close"),
        ]
    )

    sessions, days = connection_rollup(rollup_rows(events))

    assert sessions[0]["transport"] == "sse"
    assert sessions[0]["billable_minutes"] == 1
    assert days == [
        {
            "account_id": "acct-1",
            "service_id": "svc-1",
            "connection_id": "conn-1",
            "day": date(2026, 3, 1),
            "connection_minutes": 1,
            "bytes_out": 10,
        }
    ]


def test_no_rows_give_no_sessions_and_no_days():
    assert connection_rollup([]) == ([], [])
