"""The ingest hot path: ``decode_row`` answers as ``decode_event`` does, and answers fast for brokers' events."""

import copy
import json

import pytest

from metering.domain.event_rows import (
    _CONNECTION_ID,
    _EVENT_ID,
    _SOURCE,
    EVENT_FIELDS,
    _common_row,
    decode_batch,
    decode_row,
    event_row,
)
from metering.domain.events import MAX_BYTES, MAX_COUNT, MAX_ID_LENGTH, EventType, MeteringEvent, decode_event
from tests.unit.test_events import VALID


def reference(text: str):
    """What the reference path says about ``text``, in ``decode_row``'s shape."""
    result = decode_event(text)
    return event_row(result) if isinstance(result, MeteringEvent) else result


def changed(event_type: EventType, *, data: bool = False, **changes):
    """A valid event of that type with attributes (or data fields) changed; a value of ``...`` removes one."""
    event = copy.deepcopy(VALID[event_type])
    target = event["data"] if data else event
    for name, value in changes.items():
        if value is ...:
            target.pop(name, None)
        else:
            target[name] = value
    return event


@pytest.mark.parametrize("event_type", list(EventType))
@pytest.mark.parametrize(
    "time",
    ["2026-01-31T23:59:30Z", "2026-01-31T23:59:30.1Z", "2026-01-31T23:59:30.123456Z", "2000-01-01T00:00:00.000001Z"],
)
def test_a_broker_shaped_valid_event_is_decoded_on_the_fast_path_to_the_reference_row(event_type, time):
    event = changed(event_type, time=time)

    row = _common_row(json.loads(json.dumps(event)))

    assert row is not None, "the fast path should answer for the brokers' usual shape"
    assert row == reference(json.dumps(event))


CASES = {
    "specversion": [changed(EventType.CONNECTION_OPEN, specversion="0.3")],
    "source": [changed(EventType.CONNECTION_ALIVE, source=""), changed(EventType.CONNECTION_ALIVE, source=7)],
    "id": [
        changed(EventType.CONNECTION_ALIVE, id="x" * (MAX_ID_LENGTH + 1)), changed(EventType.CONNECTION_ALIVE, id=...),
    ],
    "type": [changed(EventType.CONNECTION_OPEN, type=["a"]), changed(EventType.CONNECTION_OPEN, type="fanout.other")],
    "data": [changed(EventType.CONNECTION_OPEN, data=[1]), changed(EventType.CONNECTION_OPEN, data=...)],
    "datacontenttype": [changed(EventType.MESSAGE_DELIVERED, datacontenttype="text/plain")],
    "time": [
        changed(EventType.CONNECTION_CLOSE, time=time)
        for time in (
            "2026-01-31T23:59:60Z", "2026-01-31T23:59:30.Z", "2026-01-31T23:59:30,5Z", "2026-01-31T23:59:3xZ",
            "2026-01-31T23:59-30Z", "2026-02-30T23:59:30Z", "1999-12-31T23:59:59Z", "2026-01-31T23:59:30.1234567Z",
            "2026-01-31T23:59:30z", "2026-01-31T23:59:30+00:00", "2026-01-31t23:59:30Z", "2026-01-31T23:59:30",
            "２026-01-31T23:59:30Z", "2026-01-31T23:59:3٣Z", 1769903970, None,
        )
    ],  # fmt: skip
    "subject": [
        changed(EventType.MESSAGE_PUBLISHED, subject="svc-other"), changed(EventType.MESSAGE_PUBLISHED, subject=...),
    ],
    "identifiers": [
        changed(EventType.MESSAGE_PUBLISHED, data=True, account_id=None),
        changed(EventType.MESSAGE_PUBLISHED, data=True, service_id=""),
        changed(EventType.MESSAGE_PUBLISHED, data=True, channel=5),
        changed(EventType.CONNECTION_ALIVE, data=True, connection_id=...),
    ],
    "counters": [
        changed(EventType.MESSAGE_DELIVERED, data=True, count=MAX_COUNT + 1),
        changed(EventType.MESSAGE_DELIVERED, data=True, count=True),
        changed(EventType.MESSAGE_DELIVERED, data=True, bytes=-1),
        changed(EventType.MESSAGE_DELIVERED, data=True, bytes=MAX_BYTES),
        changed(EventType.MESSAGE_DELIVERED, data=True, bytes=MAX_BYTES + 1),
        changed(EventType.CONNECTION_ALIVE, data=True, bytes_out=1.0),
        changed(EventType.CONNECTION_CLOSE, data=True, bytes_in=MAX_BYTES + 1),
    ],
    "transport": [
        changed(EventType.CONNECTION_OPEN, data=True, transport="carrier-pigeon"),
        changed(EventType.CONNECTION_OPEN, data=True, transport=["sse"]),
    ],
    "reason": [
        changed(EventType.CONNECTION_CLOSE, data=True, reason=...),
        changed(EventType.CONNECTION_CLOSE, data=True, reason=42),
        changed(EventType.CONNECTION_CLOSE, data=True, reason="r" * 300),
        changed(EventType.CONNECTION_ALIVE, data=True, reason=42),
    ],
}  # fmt: skip


@pytest.mark.parametrize("event", [e for cases in CASES.values() for e in cases])
def test_an_unusual_or_invalid_event_gets_exactly_the_reference_answer(event):
    text = json.dumps(event, ensure_ascii=False)

    assert decode_row(text) == reference(text)


@pytest.mark.parametrize("text", ['{"specversion": "1.0", "id": ', "[1, 2]", "null", '"{}"', "{} {}"])
def test_text_that_is_not_one_json_object_gets_the_reference_rejection(text):
    assert decode_row(text) == reference(text)


def test_a_decoded_batch_keeps_the_first_of_a_repeated_event_and_counts_the_repeats_and_rejections():
    first = json.dumps(VALID[EventType.MESSAGE_PUBLISHED])
    again = json.dumps(changed(EventType.MESSAGE_PUBLISHED, data=True, count=99))  # same (source, id)
    bad = json.dumps(changed(EventType.CONNECTION_OPEN, specversion="0.3"))

    batch = decode_batch([first, again, bad, first])

    assert batch.rows == [reference(first)]
    assert batch.rejections == [(reference(bad), bad)]
    assert batch.repeats == 2
    assert not batch.has_connection_events


def test_a_decoded_batch_knows_when_it_holds_connection_events():
    texts = [json.dumps(VALID[EventType.MESSAGE_DELIVERED]), json.dumps(VALID[EventType.CONNECTION_ALIVE])]

    batch = decode_batch(texts)

    assert batch.has_connection_events


def test_the_row_positions_the_batch_reads_are_those_of_their_fields():
    assert [EVENT_FIELDS[i] for i in (_SOURCE, _EVENT_ID, _CONNECTION_ID)] == ["source", "event_id", "connection_id"]
    row = reference(json.dumps(VALID[EventType.CONNECTION_OPEN]))
    assert dict(zip(EVENT_FIELDS, row, strict=True))["connection_id"] == row[_CONNECTION_ID] is not None
