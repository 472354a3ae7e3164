"""The ingest hot path (``decode_row``) gives the reference path's answer (``decode_event``) for any event text."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from metering.domain.event_rows import decode_row, event_row
from metering.domain.events import MAX_BYTES, MAX_COUNT, MAX_ID_LENGTH, MeteringEvent, decode_event
from tests.strategies import event_sets

# Values that sit on or just past the contract's edges, of every JSON type.
_ODD_VALUES = st.one_of(
    st.sampled_from([None, True, False, 0, -1, 1.0, "", "x" * MAX_ID_LENGTH, "x" * (MAX_ID_LENGTH + 1), [], {}]),
    st.sampled_from([MAX_COUNT, MAX_COUNT + 1, MAX_BYTES, MAX_BYTES + 1, 2**64, "sse", "1.0", "application/json"]),
    st.sampled_from(["fanout.connection.open", "fanout.connection.close", "fanout.message.published"]),
    st.text(max_size=12),
    st.integers(),
)
# Timestamps near the RFC 3339 shape, valid or not: leap seconds, 31 February, no zone, long fractions.
_ODD_TIMES = st.one_of(
    st.sampled_from(["2026-01-31T23:59:60Z", "2026-02-29T00:00:00Z", "2026-01-31T23:59:30", "2999-12-31T23:59:59Z"]),
    st.from_regex(
        r"(1999|20[0-9]{2}|2999|3000)-[01][0-9]-[0-3][0-9][Tt ][0-2][0-9]:[0-6][0-9](:[0-6][0-9])?(\.[0-9]{0,8})?"
        r"([Zz]|[+-][0-2][0-9]:[0-6][0-9])?",
        fullmatch=True,
    ),
)
_TOP = ["specversion", "id", "source", "type", "time", "subject", "datacontenttype", "data"]
_DATA = ["account_id", "service_id", "connection_id", "channel", "transport", "count", "bytes", "bytes_out",
         "bytes_in", "reason"]  # fmt: skip


def reference(text: str):
    result = decode_event(text)
    return event_row(result) if isinstance(result, MeteringEvent) else result


@st.composite
def mutated_events(draw: st.DrawFn) -> dict:
    """A valid event with an odd timestamp, or a few attributes or data fields replaced by odd values or removed."""
    event = draw(st.sampled_from(draw(event_sets(max_connections=2, max_messages=2).filter(bool))))
    if draw(st.booleans()):
        event["time"] = draw(_ODD_TIMES)
    for _ in range(draw(st.integers(0, 3))):
        in_data = draw(st.booleans()) and isinstance(event.get("data"), dict)
        target = event["data"] if in_data else event
        name = draw(st.sampled_from(_DATA if in_data else _TOP))
        if draw(st.integers(0, 4)) == 0:
            target.pop(name, None)
        else:
            target[name] = draw(_ODD_VALUES)
    return event


@settings(max_examples=500, deadline=None, database=None)
@given(mutated_events())
def test_the_hot_path_answers_as_the_reference_path_for_any_event(event):
    text = json.dumps(event)

    assert decode_row(text) == reference(text)
