"""Connection sessions: start, end and status of each connection from the set of its events."""

import pytest

from metering.domain.sessions import (
    ConnectionKey,
    SessionStatus,
    connection_key,
    distinct_events,
    session_of,
    sessionize,
)
from tests.strategies import alive_event, close_event, open_event, parsed, published_event, utc_micros

KEY = ConnectionKey("acct-1", "svc-1", "conn-1")
SECOND = 1_000_000
MINUTE = 60 * SECOND


def at(clock: str) -> int:
    """UTC microseconds of a time of day on 2026-02-10."""
    return utc_micros(f"2026-02-10T{clock}Z")


def only_session(dicts):
    sessions = sessionize(parsed(dicts))
    assert list(sessions) == [KEY]
    return sessions[KEY]


def test_a_complete_connection_runs_from_its_open_to_its_close():
    session = only_session(
        [open_event(at("10:00:00")), alive_event(at("10:01:00"), 10), close_event(at("10:01:30"), 20)]
    )

    assert (session.start_us, session.end_us, session.last_seen_us) == (at("10:00:00"), at("10:01:30"), at("10:01:30"))
    assert session.closed
    assert session.billable_minutes == 2
    assert session.transport == "sse"


def test_a_connection_whose_open_was_lost_starts_at_its_earliest_event():
    session = only_session(
        [alive_event(at("10:02:00"), 10), close_event(at("10:03:30"), 30), alive_event(at("10:01:00"), 5)]
    )

    assert session.start_us == at("10:01:00")
    assert session.end_us == at("10:03:30")
    assert session.billable_minutes == 3
    assert session.transport is None


def test_a_connection_whose_close_was_lost_ends_when_it_was_last_seen():
    session = only_session([open_event(at("10:00:00")), alive_event(at("10:01:00"), 5), alive_event(at("10:02:10"), 9)])

    assert session.end_us == session.last_seen_us == at("10:02:10")
    assert not session.closed
    assert session.billable_minutes == 3


def test_a_connection_with_only_an_open_lasts_zero_seconds_and_bills_one_minute():
    session = only_session([open_event(at("10:00:00"))])

    assert session.start_us == session.end_us
    assert session.billable_minutes == 1


@pytest.mark.parametrize("close_at", ["10:00:04", "09:00:00"])
def test_a_close_stamped_before_the_open_counts_as_a_zero_duration_and_bills_one_minute(close_at):
    session = only_session([open_event(at("10:00:05")), close_event(at(close_at))])

    assert session.start_us == at("10:00:05")
    assert session.end_us == at(close_at)
    assert session.billable_minutes == 1


def test_with_an_open_the_start_is_the_open_time_even_if_another_event_is_stamped_earlier():
    session = only_session([alive_event(at("09:59:50"), 1), open_event(at("10:00:00")), close_event(at("10:02:00"), 2)])

    assert session.start_us == at("10:00:00")
    assert session.billable_minutes == 2


def test_duplicated_events_are_counted_once_and_change_nothing():
    events = [open_event(at("10:00:00")), alive_event(at("10:01:00"), 5), close_event(at("10:01:30"), 20)]
    twice = events + [dict(events[2]), dict(events[0]), dict(events[2])]

    assert sessionize(parsed(twice)) == sessionize(parsed(events))
    assert len(distinct_events(parsed(twice))) == 3


def test_distinct_events_keys_on_source_and_id_not_on_id_alone():
    same_id_two_nodes = [
        open_event(at("10:00:00"), id="e-1", source="broker/node-1"),
        open_event(at("10:00:00"), id="e-1", source="broker/node-2", connection="conn-2"),
    ]

    assert len(distinct_events(parsed(same_id_two_nodes))) == 2
    assert len(sessionize(parsed(same_id_two_nodes))) == 2


def test_when_several_closes_exist_the_earliest_close_ends_the_connection():
    events = [open_event(at("10:00:00")), close_event(at("10:05:00"), 50), close_event(at("10:02:30"), 20)]
    session = only_session(events)

    assert session.end_us == at("10:02:30")
    assert session.last_seen_us == at("10:05:00")
    assert session.billable_minutes == 3


def test_a_real_close_that_arrives_later_replaces_the_last_seen_end():
    seen = [open_event(at("10:00:00")), alive_event(at("10:01:00"), 5)]
    before = only_session(seen)
    after = only_session([*seen, close_event(at("10:04:00"), 9)])

    assert (before.end_us, before.closed) == (at("10:01:00"), False)
    assert (after.end_us, after.closed) == (at("10:04:00"), True)
    assert after.billable_minutes == 4


def test_when_several_opens_exist_the_earliest_open_starts_the_connection_and_gives_its_transport():
    events = [
        open_event(at("10:01:00"), transport="websocket"),
        open_event(at("10:00:00"), transport="long-poll"),
        close_event(at("10:03:00")),
    ]

    for arrived in (events, events[::-1]):
        session = only_session(arrived)
        assert session.start_us == at("10:00:00")
        assert session.transport == "long-poll"
        assert session.billable_minutes == 3


def test_connections_are_keyed_by_account_service_and_connection_id_and_messages_are_ignored():
    events = parsed(
        [
            open_event(at("10:00:00"), service="svc-1", connection="c"),
            open_event(at("10:00:00"), service="svc-2", connection="c"),
            open_event(at("10:00:00"), account="acct-2", service="svc-1", connection="c"),
            close_event(at("10:10:00"), service="svc-2", connection="c"),
            published_event(at("10:05:00"), 3, service="svc-1"),
        ]
    )
    sessions = sessionize(events)

    assert set(sessions) == {
        ConnectionKey("acct-1", "svc-1", "c"),
        ConnectionKey("acct-1", "svc-2", "c"),
        ConnectionKey("acct-2", "svc-1", "c"),
    }
    assert sessions[ConnectionKey("acct-1", "svc-2", "c")].billable_minutes == 10
    assert sessions[ConnectionKey("acct-1", "svc-1", "c")].billable_minutes == 1


def test_the_sessions_do_not_depend_on_the_order_events_arrive_in():
    events = parsed(
        [
            close_event(at("10:07:00"), 70),
            alive_event(at("10:01:00"), 10),
            open_event(at("10:00:00")),
            alive_event(at("10:02:00"), 20),
        ]
    )

    assert sessionize(events) == sessionize(list(reversed(events))) == sessionize(sorted(events, key=lambda e: e.id))


def test_session_of_uses_only_the_events_it_is_given():
    events = parsed([open_event(at("10:00:00")), alive_event(at("10:04:00"), 1)])

    assert session_of(KEY, events).billable_minutes == 4


# --- status: open, lost (3 x alive interval of silence), closed ----------------------------------

ALIVE = 60 * SECOND


def test_a_connection_is_still_open_exactly_three_alive_intervals_after_it_was_last_seen():
    session = only_session([open_event(at("10:00:00")), alive_event(at("10:01:00"), 1)])

    assert session.status(at("10:01:00"), ALIVE, 3) is SessionStatus.OPEN
    assert session.status(at("10:04:00"), ALIVE, 3) is SessionStatus.OPEN


def test_a_connection_silent_for_more_than_three_alive_intervals_is_lost():
    session = only_session([open_event(at("10:00:00")), alive_event(at("10:01:00"), 1)])

    assert session.status(at("10:04:00") + 1, ALIVE, 3) is SessionStatus.LOST
    assert session.status(at("23:00:00"), ALIVE, 3) is SessionStatus.LOST


def test_the_lost_threshold_follows_the_alive_interval_and_factor_passed_in():
    session = only_session([open_event(at("10:00:00"))])

    assert session.status(at("10:01:30"), 30 * SECOND, 3) is SessionStatus.OPEN
    assert session.status(at("10:01:30") + 1, 30 * SECOND, 3) is SessionStatus.LOST
    assert session.status(at("10:04:00"), ALIVE, 5) is SessionStatus.OPEN
    assert session.status(at("10:05:00") + 1, ALIVE, 5) is SessionStatus.LOST


def test_a_closed_connection_is_closed_whatever_the_time():
    session = only_session([open_event(at("10:00:00")), close_event(at("10:00:10"))])

    assert session.status(at("10:00:10"), ALIVE, 3) is SessionStatus.CLOSED
    assert session.status(at("23:00:00"), ALIVE, 3) is SessionStatus.CLOSED


def test_a_lost_connection_is_billed_only_up_to_when_it_was_last_seen():
    session = only_session([open_event(at("10:00:00")), alive_event(at("10:01:00"), 1), alive_event(at("10:02:00"), 2)])

    assert session.status(at("11:00:00"), ALIVE, 3) is SessionStatus.LOST
    assert session.end_us == at("10:02:00")
    assert session.billable_minutes == 2


def test_a_message_event_has_no_connection_key():
    message = parsed([published_event("2026-01-31T10:00:00Z", 1)])[0]

    with pytest.raises(ValueError, match="not a connection event"):
        connection_key(message)
