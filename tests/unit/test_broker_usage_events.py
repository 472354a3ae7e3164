"""The broker's CloudEvents pass the metering contract exactly as the pipeline checks it."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from broker.usage import events
from broker.usage.events import Subject
from metering.domain.events import EventType, MeteringEvent, parse_event

AT = datetime(2026, 11, 28, 4, 5, 6, 7, tzinfo=UTC)
WHO = Subject("acct", "svc")


def parsed(event):
    result = parse_event(event)
    assert isinstance(result, MeteringEvent), result
    return result


def test_an_open_event_names_the_node_as_source_and_the_service_as_subject():
    event = events.connection_open("node-1", "e1", AT, WHO, "c1", "sse")
    assert (event["source"], event["subject"], event["time"]) == ("broker/node-1", "svc", "2026-11-28T04:05:06.000007Z")
    result = parsed(event)
    assert (result.type, result.connection_id, result.transport, result.account_id) == (
        EventType.CONNECTION_OPEN,
        "c1",
        "sse",
        "acct",
    )


def test_alive_and_close_carry_cumulative_bytes_and_close_its_reason():
    alive = parsed(events.connection_report("n", "e2", AT, WHO, "c1", (10, 2)))
    close = parsed(events.connection_report("n", "e3", AT, WHO, "c1", (12, 3), "client disconnected"))
    assert (alive.type, alive.bytes_out, alive.bytes_in) == (EventType.CONNECTION_ALIVE, 10, 2)
    assert (close.type, close.bytes_out, close.reason) == (EventType.CONNECTION_CLOSE, 12, "client disconnected")


def test_message_events_carry_channel_count_and_bytes():
    published = parsed(events.message_event("published", "n", "e4", AT, WHO, "ch", 1, 5))
    delivered = parsed(events.message_event("delivered", "n", "e5", AT, WHO, "ch", 3, 15))
    assert (published.type, published.count, published.bytes_out) == (EventType.MESSAGE_PUBLISHED, 1, 5)
    assert (delivered.type, delivered.count, delivered.channel) == (EventType.MESSAGE_DELIVERED, 3, "ch")


def test_times_in_other_zones_are_written_in_utc_and_naive_times_are_refused():
    assert events.rfc3339(datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))) == "2026-01-01T00:00:00.000000Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        events.rfc3339(datetime(2026, 1, 1))  # noqa: DTZ001 - the naive value under test
