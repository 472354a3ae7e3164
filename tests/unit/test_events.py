"""The event contract: every violation becomes a Rejection with a clear reason; valid events parse exactly."""

import copy
import json
from datetime import UTC, datetime

import pytest

from kernel.instants import Month
from metering.domain.events import (
    MAX_BYTES,
    MAX_COUNT,
    EventType,
    MeteringEvent,
    Rejection,
    decode_event,
    parse_event,
)
from tests.strategies import alive_event, close_event, delivered_event, open_event, published_event, utc_micros

T = "2026-01-31T23:59:30Z"

VALID = {
    EventType.CONNECTION_OPEN: open_event(T, id="e-open", source="broker/node-1", service="svc-1"),
    EventType.CONNECTION_ALIVE: alive_event(T, 100, 7, id="e-alive", source="broker/node-1", service="svc-1"),
    EventType.CONNECTION_CLOSE: close_event(T, 250, 9, "client-closed", id="e-close", source="broker/node-1"),
    EventType.MESSAGE_PUBLISHED: published_event(T, 3, id="e-pub", source="broker/node-1"),
    EventType.MESSAGE_DELIVERED: delivered_event(T, 5, id="e-del", source="broker/node-1"),
}

REQUIRED_DATA = {
    EventType.CONNECTION_OPEN: ("account_id", "service_id", "connection_id", "transport"),
    EventType.CONNECTION_ALIVE: ("account_id", "service_id", "connection_id", "bytes_out", "bytes_in"),
    EventType.CONNECTION_CLOSE: ("account_id", "service_id", "connection_id", "bytes_out", "bytes_in"),
    EventType.MESSAGE_PUBLISHED: ("account_id", "service_id", "channel", "count", "bytes"),
    EventType.MESSAGE_DELIVERED: ("account_id", "service_id", "channel", "count", "bytes"),
}


def valid(event_type=EventType.MESSAGE_PUBLISHED, **changes):
    """A deep copy of a valid event of that type with top-level attributes changed."""
    event = copy.deepcopy(VALID[event_type])
    event.update(changes)
    return event


def with_data(event_type, **changes):
    event = valid(event_type)
    event["data"].update(changes)
    return event


def without(event, name, in_data=False):
    target = event["data"] if in_data else event
    del target[name]
    return event


def rejected(raw) -> Rejection:
    result = parse_event(raw)
    assert isinstance(result, Rejection), f"expected a rejection, got {result!r}"
    return result


def accepted(raw) -> MeteringEvent:
    result = parse_event(raw)
    assert isinstance(result, MeteringEvent), f"expected an event, got {result!r}"
    return result


def micros(year: int, month: int, day: int, hour: int, minute: int, second: int, microsecond: int = 0) -> int:
    """UTC microseconds of a datetime, computed independently of the parser."""
    instant = datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)
    return int(instant.timestamp()) * 1_000_000 + instant.microsecond


# --- rejections ------------------------------------------------------------------------------
# Reasons are checked for what an operator needs (the field, the problem, the offending JSON
# type), not for exact wording.


def assert_mentions(reason: str, *fragments: str) -> None:
    missing = [f for f in fragments if f not in reason]
    assert not missing, f"reason {reason!r} does not mention {missing}"


@pytest.mark.parametrize(
    ("raw", "json_type"),
    [
        ([VALID[EventType.MESSAGE_PUBLISHED]], "array"),
        ("{}", "string"),
        (42, "integer"),
        (None, "null"),
        (True, "boolean"),
    ],
)
def test_anything_but_a_json_object_is_rejected_naming_what_it_was(raw, json_type):
    assert_mentions(rejected(raw).reason, "JSON object", json_type)


@pytest.mark.parametrize("event_type", list(EventType))
@pytest.mark.parametrize("name", ["specversion", "id", "source", "type", "time", "data"])
def test_an_event_missing_a_required_attribute_is_rejected_naming_it(event_type, name):
    assert_mentions(rejected(without(valid(event_type), name)).reason, name)


@pytest.mark.parametrize(("event_type", "name"), [(t, name) for t, names in REQUIRED_DATA.items() for name in names])
def test_an_event_missing_a_required_data_field_is_rejected_naming_it(event_type, name):
    reason = rejected(without(valid(event_type), name, in_data=True)).reason
    if name == "transport":
        assert_mentions(reason, "data.transport", "sse", "http-stream", "long-poll", "websocket")
    else:
        assert_mentions(reason, "missing", f"data.{name}")


@pytest.mark.parametrize(
    ("event_type", "field", "value", "expected"),
    [
        (EventType.MESSAGE_PUBLISHED, "count", "5", ("data.count", "integer", "got string")),
        (EventType.MESSAGE_DELIVERED, "count", 5.0, ("data.count", "integer", "got number")),
        (EventType.MESSAGE_PUBLISHED, "count", True, ("data.count", "integer", "got boolean")),
        (EventType.MESSAGE_PUBLISHED, "bytes", 1.5, ("data.bytes", "integer", "got number")),
        (EventType.CONNECTION_ALIVE, "bytes_out", 100.0, ("data.bytes_out", "integer", "got number")),
        (EventType.CONNECTION_CLOSE, "bytes_in", False, ("data.bytes_in", "integer", "got boolean")),
        (EventType.CONNECTION_ALIVE, "bytes_out", "100", ("data.bytes_out", "integer", "got string")),
        (EventType.CONNECTION_OPEN, "account_id", 17, ("data.account_id", "string", "got integer")),
        (EventType.CONNECTION_OPEN, "connection_id", ["c"], ("data.connection_id", "string", "got array")),
        (EventType.MESSAGE_PUBLISHED, "channel", {"name": "news"}, ("data.channel", "string", "got object")),
        (EventType.CONNECTION_CLOSE, "reason", 3, ("data.reason", "string", "got integer")),
    ],
)
def test_a_data_field_of_the_wrong_json_type_is_rejected_naming_field_and_type(event_type, field, value, expected):
    assert_mentions(rejected(with_data(event_type, **{field: value})).reason, *expected)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("id", 12, ("id", "string", "got integer")),
        ("type", 7, ("type", "got integer")),
        ("source", None, ("missing", "source")),
        ("id", "", ("id", "1-256 characters")),
        ("id", "x" * 257, ("id", "1-256 characters")),
        ("time", 1769903970, ("time", "RFC 3339", "got integer")),
        ("data", [1, 2], ("data", "JSON object", "got array")),
        ("datacontenttype", "text/plain", ("datacontenttype", "application/json", "text/plain")),
    ],
)
def test_an_attribute_of_the_wrong_type_or_shape_is_rejected_with_its_reason(name, value, expected):
    assert_mentions(rejected(valid(**{name: value})).reason, *expected)


def test_an_empty_data_identifier_is_rejected():
    assert_mentions(rejected(with_data(EventType.CONNECTION_OPEN, connection_id="")).reason, "data.connection_id")


@pytest.mark.parametrize("type_name", ["fanout.connection.opened", "com.example.signup", "FANOUT.CONNECTION.OPEN", ""])
def test_an_unknown_event_type_is_rejected_quoting_it(type_name):
    assert_mentions(rejected(valid(type=type_name)).reason, "unknown type", repr(type_name))


@pytest.mark.parametrize(
    ("event_type", "field"),
    [
        (EventType.MESSAGE_PUBLISHED, "count"),
        (EventType.MESSAGE_DELIVERED, "count"),
        (EventType.MESSAGE_PUBLISHED, "bytes"),
        (EventType.CONNECTION_ALIVE, "bytes_out"),
        (EventType.CONNECTION_CLOSE, "bytes_in"),
    ],
)
def test_a_negative_counter_is_rejected(event_type, field):
    assert_mentions(rejected(with_data(event_type, **{field: -1})).reason, f"data.{field}", "negative")


@pytest.mark.parametrize("event_type", [EventType.MESSAGE_PUBLISHED, EventType.MESSAGE_DELIVERED])
def test_a_count_above_max_count_is_rejected_as_implausible_and_max_count_itself_is_accepted(event_type):
    assert_mentions(rejected(with_data(event_type, count=MAX_COUNT + 1)).reason, "data.count", "implausibly large")
    assert accepted(with_data(event_type, count=MAX_COUNT)).count == MAX_COUNT


@pytest.mark.parametrize(
    ("event_type", "field"),
    [
        (EventType.CONNECTION_ALIVE, "bytes_out"),
        (EventType.CONNECTION_ALIVE, "bytes_in"),
        (EventType.CONNECTION_CLOSE, "bytes_out"),
        (EventType.MESSAGE_PUBLISHED, "bytes"),
    ],
)
def test_bytes_above_max_bytes_are_rejected_as_implausible_and_max_bytes_itself_is_accepted(event_type, field):
    reason = rejected(with_data(event_type, **{field: MAX_BYTES + 1})).reason
    assert_mentions(reason, f"data.{field}", "implausibly large")
    accepted(with_data(event_type, **{field: MAX_BYTES}))


@pytest.mark.parametrize("time", ["2026-01-31T23:59:30", "2026-01-31T23:59:30.123456", "2026-01-31T23:59:30.123456789"])
def test_a_timestamp_without_a_zone_is_rejected_saying_it_needs_a_time_zone(time):
    assert_mentions(rejected(valid(time=time)).reason, "time", "time zone")


@pytest.mark.parametrize(
    "time",
    [
        "2026-01-31 23:59:30Z",
        "2026-01-31T23:59Z",
        "2026-01-31",
        "31/01/2026 23:59:30",
        "2026-01-31T23:59:30+0530",
        "2026-01-31T23:59:30 +05:30",
        "1769903970",
        "",
        "Sat, 31 Jan 2026 23:59:30 GMT",
    ],
)
def test_a_timestamp_that_is_not_rfc_3339_is_rejected(time):
    reason = rejected(valid(time=time)).reason
    assert_mentions(reason, "time", "RFC 3339")
    assert "time zone" not in reason


@pytest.mark.parametrize(
    "time", ["2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z", "2026-01-31T24:00:00Z", "2026-01-31T23:59:30+24:00"]
)
def test_a_timestamp_shaped_like_rfc_3339_that_names_no_real_instant_is_rejected(time):
    assert_mentions(rejected(valid(time=time)).reason, "time", "not a valid instant")


@pytest.mark.parametrize(
    "time",
    [
        "1999-12-31T23:59:59Z",
        "3000-01-01T00:00:00Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59-01:00",
        "2999-12-31T23:30:00-01:00",  # 3000-01-01T00:30Z
        "2000-01-01T00:30:00+01:00",  # 1999-12-31T23:30Z
    ],
)
def test_a_timestamp_outside_the_years_that_can_be_billed_is_rejected(time):
    assert_mentions(rejected(valid(time=time)).reason, "time", "outside", "2000", "2999")


def test_the_billable_years_are_judged_in_utc_not_in_the_local_offset():
    accepted = parse_event(valid(time="1999-12-31T23:30:00-01:00"))

    assert isinstance(accepted, MeteringEvent)
    assert accepted.time_us == utc_micros("2000-01-01T00:30:00Z")


@pytest.mark.parametrize("version", ["0.3", 1.0, "1", None])
def test_a_specversion_other_than_1_0_is_rejected_quoting_it(version):
    assert_mentions(rejected(valid(specversion=version)).reason, "specversion", '"1.0"', repr(version))


def test_a_missing_specversion_is_rejected():
    assert_mentions(rejected(without(valid(), "specversion")).reason, "specversion", '"1.0"')


@pytest.mark.parametrize("event_type", list(EventType))
def test_a_subject_that_does_not_match_the_service_id_is_rejected(event_type):
    reason = rejected(valid(event_type, subject="svc-other")).reason
    assert_mentions(reason, "subject", "svc-other", "data.service_id", VALID[event_type]["data"]["service_id"])


@pytest.mark.parametrize("transport", ["grpc", "SSE", "", 1, ["sse"], {"sse": 1}])
def test_an_open_with_a_transport_outside_the_contract_is_rejected_listing_the_allowed_ones(transport):
    reason = rejected(with_data(EventType.CONNECTION_OPEN, transport=transport)).reason
    assert_mentions(reason, "data.transport", "sse", "http-stream", "long-poll", "websocket")


def test_a_rejection_keeps_the_source_and_id_when_they_could_be_read():
    rejection = rejected(with_data(EventType.MESSAGE_PUBLISHED, count=-5))
    assert (rejection.source, rejection.id) == ("broker/node-1", "e-pub")

    unreadable = rejected(valid(id=12, source=None))
    assert (unreadable.source, unreadable.id) == (None, None)


# --- valid events ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("time", "expected"),
    [
        ("2026-01-31T23:59:30Z", micros(2026, 1, 31, 23, 59, 30)),
        ("2026-01-31T23:59:30z", micros(2026, 1, 31, 23, 59, 30)),
        ("2026-01-31t23:59:30z", micros(2026, 1, 31, 23, 59, 30)),
        ("2026-01-31T23:59:30+00:00", micros(2026, 1, 31, 23, 59, 30)),
        ("2026-01-31T23:59:30-00:00", micros(2026, 1, 31, 23, 59, 30)),
        ("2026-02-01T05:29:30.25+05:30", micros(2026, 1, 31, 23, 59, 30, 250_000)),
        ("2026-01-31T16:00:00-08:00", micros(2026, 2, 1, 0, 0, 0)),
        ("2026-02-01T00:44:59.000001+00:45", micros(2026, 1, 31, 23, 59, 59, 1)),
        ("2025-12-31T14:00:00-10:00", micros(2026, 1, 1, 0, 0, 0)),
        ("2026-01-31T23:59:30.5Z", micros(2026, 1, 31, 23, 59, 30, 500_000)),
        ("2026-01-31T23:59:30.123Z", micros(2026, 1, 31, 23, 59, 30, 123_000)),
        ("2026-01-31T23:59:30.123456Z", micros(2026, 1, 31, 23, 59, 30, 123_456)),
    ],
)
def test_a_valid_time_in_any_offset_is_stored_as_the_right_utc_microseconds(time, expected):
    assert accepted(valid(time=time)).time_us == expected


def test_an_eight_hours_behind_offset_moves_the_event_into_the_next_utc_month():
    event = accepted(valid(time="2026-01-31T16:00:00.000001-08:00"))
    assert Month.of(event.time_us) == Month(2026, 2)


@pytest.mark.parametrize(
    ("time", "expected"),
    [
        ("2026-01-31T23:59:30.123456789Z", micros(2026, 1, 31, 23, 59, 30, 123_456)),
        ("2026-01-31T23:59:30.1234567Z", micros(2026, 1, 31, 23, 59, 30, 123_456)),
        ("2026-01-31T23:59:59.999999999Z", micros(2026, 1, 31, 23, 59, 59, 999_999)),
        ("2026-02-01T05:29:59.999999999+05:30", micros(2026, 1, 31, 23, 59, 59, 999_999)),
    ],
)
def test_sub_microsecond_digits_are_truncated_never_rounded_into_the_next_second(time, expected):
    event = accepted(valid(time=time))
    assert event.time_us == expected
    assert Month.of(event.time_us) == Month(2026, 1)


def test_a_valid_open_carries_its_connection_and_transport():
    event = accepted(VALID[EventType.CONNECTION_OPEN])
    assert event == MeteringEvent(
        source="broker/node-1",
        id="e-open",
        type=EventType.CONNECTION_OPEN,
        time_us=micros(2026, 1, 31, 23, 59, 30),
        account_id="acct-1",
        service_id="svc-1",
        connection_id="conn-1",
        transport="sse",
    )
    assert event.key == ("broker/node-1", "e-open")


def test_a_valid_alive_carries_both_cumulative_counters():
    event = accepted(VALID[EventType.CONNECTION_ALIVE])
    assert (event.type, event.bytes_out, event.bytes_in, event.reason) == (EventType.CONNECTION_ALIVE, 100, 7, None)


def test_a_close_with_a_reason_keeps_it_and_a_close_without_one_has_none():
    with_reason = accepted(VALID[EventType.CONNECTION_CLOSE])
    assert (with_reason.bytes_out, with_reason.bytes_in, with_reason.reason) == (250, 9, "client-closed")

    no_reason = accepted(without(valid(EventType.CONNECTION_CLOSE), "reason", in_data=True))
    assert no_reason.reason is None
    assert accepted(with_data(EventType.CONNECTION_CLOSE, reason=None)).reason is None


@pytest.mark.parametrize(("event_type", "count"), [(EventType.MESSAGE_PUBLISHED, 3), (EventType.MESSAGE_DELIVERED, 5)])
def test_a_valid_message_event_carries_its_channel_and_count(event_type, count):
    event = accepted(VALID[event_type])
    assert (event.type, event.channel, event.count, event.connection_id) == (event_type, "news", count, None)


def test_a_zero_count_is_valid():
    assert accepted(with_data(EventType.MESSAGE_DELIVERED, count=0)).count == 0


def test_subject_and_datacontenttype_are_optional():
    event = without(without(valid(), "subject"), "datacontenttype")
    assert accepted(event).service_id == "svc-1"


def test_malformed_json_text_is_a_rejection_with_the_parser_reason():
    rejection = decode_event('{"specversion": "1.0", "id": ')

    assert isinstance(rejection, Rejection)
    assert rejection.reason.startswith("malformed JSON: ")


def test_well_formed_json_text_is_validated_like_a_decoded_event():
    event = open_event("2026-01-31T23:59:30+02:00", id="o-1")

    assert decode_event(json.dumps(event)) == parse_event(event)


# --- hostile JSON: keys given twice, NUL and lone surrogates (findings 12 and 13) --------------


def both_decoders(text: str):
    """decode_event and the ingest hot path (decode_row) answer the same for every text."""
    from metering.domain.event_rows import decode_row

    event, row = decode_event(text), decode_row(text)
    assert (isinstance(event, Rejection), isinstance(row, Rejection)) in ((True, True), (False, False))
    if isinstance(event, Rejection):
        assert row == event
    return event


def test_a_key_given_twice_is_rejected_not_taken_last_wins():
    text = json.dumps(VALID[EventType.MESSAGE_PUBLISHED]).replace('"count": 3', '"count": 1, "count": 1000000000')

    result = both_decoders(text)

    assert result == Rejection("duplicate key 'count' in an object (an event names each field once)")


def test_a_top_level_key_given_twice_is_rejected_too():
    text = '{"id": "a", ' + json.dumps(VALID[EventType.MESSAGE_PUBLISHED])[1:]

    assert both_decoders(text) == Rejection("duplicate key 'id' in an object (an event names each field once)")


@pytest.mark.parametrize(
    ("field", "in_data", "where"),
    [("id", False, "id"), ("source", False, "source"), ("account_id", True, "data.account_id"),
     ("channel", True, "data.channel"), ("service_id", True, "data.service_id")],
)  # fmt: skip
def test_a_nul_in_any_string_field_is_rejected_naming_the_field(field, in_data, where):
    event = valid()
    target = event["data"] if in_data else event
    target[field] = target[field] + "\x00x"

    result = both_decoders(json.dumps(event))

    assert result == Rejection(f"{where} contains a NUL character")


def test_a_nul_in_a_key_or_an_extension_attribute_is_rejected_too():
    assert both_decoders(json.dumps(valid(**{"ext\x00": "1"}))) == Rejection(
        "a key of the event contains a NUL character"
    )
    assert both_decoders(json.dumps(valid(comment="a\x00"))) == Rejection("comment contains a NUL character")


def test_a_nul_inside_a_list_is_rejected_naming_its_place_and_a_clean_list_is_looked_through():
    assert both_decoders(json.dumps(valid(tags=["ok", "b\x00"]))) == Rejection("tags[1] contains a NUL character")
    assert both_decoders(json.dumps(valid(tags=["ok", 1, ["x"]]))) == both_decoders(json.dumps(valid()))


@pytest.mark.parametrize("text_of", [lambda e: json.dumps(e), lambda e: json.dumps(e, ensure_ascii=False)])
def test_a_lone_surrogate_in_a_string_is_rejected(text_of):
    event = with_data(EventType.MESSAGE_PUBLISHED, channel="news\ud800")

    assert both_decoders(text_of(event)) == Rejection("data.channel contains a lone surrogate (not valid Unicode)")


def test_a_rejection_keeps_no_source_or_id_a_database_could_not_store():
    event = valid(id="e\x00", source="broker/\ud800", specversion="0.3")

    assert parse_event(event) == Rejection("specversion must be \"1.0\", got '0.3'")


def test_escaped_and_non_ascii_text_that_is_valid_still_parses():
    event = with_data(EventType.MESSAGE_PUBLISHED, channel="nouvelles-\u00e9t\u00e9-\U0001f600")

    assert isinstance(both_decoders(json.dumps(event)), MeteringEvent)
    assert isinstance(both_decoders(json.dumps(event, ensure_ascii=False)), MeteringEvent)


def test_nesting_too_deep_and_integers_too_long_are_rejections_not_crashes():
    assert both_decoders("[" * 100_000) == Rejection("the JSON is nested too deeply")
    too_long = both_decoders(json.dumps(valid()).replace('"count": 3', '"count": ' + "9" * 5000))
    assert too_long == Rejection("an integer has too many digits")
