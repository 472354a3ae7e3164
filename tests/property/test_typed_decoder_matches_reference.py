"""Differential: the msgspec hot path (``decode_row``, ``decode_batch``) answers exactly as the reference path
(``decode_event``: ``load_json`` then ``parse_event``), row for row and reason for reason.

The texts are written at the text level, not only through ``json.dumps``: a key given twice (same or
other value, at the top or in data), NUL and lone surrogates (escaped and raw), integers too big for
any column or with thousands of digits, floats where integers are required, wrong types, missing and
unknown fields, odd timestamps, whitespace around the colons, truncation and trailing bytes.
"""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from metering.domain.event_rows import _typed_row, decode_batch, decode_row, event_row
from metering.domain.events import MeteringEvent, decode_event, parse_time
from tests.property.test_event_rows_match_reference import mutated_events
from tests.strategies import event_sets, format_time


def reference(text: str):
    result = decode_event(text)
    return event_row(result) if isinstance(result, MeteringEvent) else result


# What a hostile producer puts where a value goes (JSON text, inserted verbatim).
_HOSTILE_VALUES = st.sampled_from([
    "1.0", "1e3", "-0", "-0.0", "0", "-1", "1000000001", "1000000000000001", str(2**63), str(2**64), "9" * 30,
    "9" * 5000, "true", "null", "NaN", "Infinity", '""', '"\\u0000"', '"a\\u0000b"', '"\\ud800"', '"\\udfff x"',
    '"\\ud83d\\ude00"', '"\x00"', '"\ud800"', '"é"', '"\\n"', '"sse"', '"long-poll"', '"1.0"', "[]", "{}",
    '{"a":{"b":[1]}}', "[" * 60 + "]" * 60, '"2026-01-31T00:00:00Z"', '"2026-01-31T00:00:00.1234567Z"',
])  # fmt: skip
_KEYS = st.sampled_from([
    "specversion", "id", "source", "type", "time", "subject", "datacontenttype", "data", "account_id",
    "service_id", "connection_id", "transport", "channel", "count", "bytes", "bytes_out", "bytes_in", "reason",
    "extension", "\\u0000", "k\\ud800", "\x00",
])  # fmt: skip


_REPEATABLE = ["specversion", "id", "source", "type", "time", "subject", "data", "account_id", "service_id",
               "connection_id", "count", "bytes", "bytes_out", "transport"]  # fmt: skip


def _render(draw: st.DrawFn, event: object) -> str:
    """The event as JSON text in one of the forms producers write: compact (the broker's), spaced, or non-ASCII."""
    form = draw(st.sampled_from(["compact", "spaced", "unicode", "pretty"]))
    if form == "compact":
        return json.dumps(event, separators=(",", ":"))
    if form == "unicode":
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    if form == "pretty":
        return json.dumps(event, indent=1)
    return json.dumps(event)


def _insert_member(draw: st.DrawFn, text: str) -> str:
    """A ``"key":value,`` member put right after an object's opening brace (the top object or data)."""
    braces = [i for i, c in enumerate(text) if c == "{"]
    if not braces:
        return text
    at = draw(st.sampled_from(braces)) + 1
    key = draw(_KEYS)
    colon = draw(st.sampled_from([":", " :", ": ", "\t:\n"]))
    member = f'"{key}"{colon}{draw(_HOSTILE_VALUES)}'
    rest = text[at:].lstrip()
    return text[:at] + member + ("" if rest.startswith("}") else ",") + text[at:]


def _repeat_member(draw: st.DrawFn, text: str) -> str:
    """A key the text already names given again, first with another value or the same one."""
    compact = text.replace('": ', '":')
    name = draw(st.sampled_from(_REPEATABLE))
    marker = f'"{name}":'
    if marker not in compact:
        return text
    start = compact.index(marker)
    brace = compact.rfind("{", 0, start) + 1
    value = draw(st.one_of(_HOSTILE_VALUES, st.just(compact[start + len(marker) :].split(",")[0].rstrip("}"))))
    return compact[:brace] + f"{marker}{value}," + compact[brace:]


def _replace_value(draw: st.DrawFn, text: str) -> str:
    """The value after one ``":`` replaced by a hostile one."""
    colons = [i for i in range(len(text) - 1) if text[i : i + 2] == '":']
    if not colons:
        return text
    at = draw(st.sampled_from(colons)) + 2
    end = at
    depth = 0
    in_string = False
    while end < len(text):
        c = text[end]
        if in_string:
            in_string = c != '"' or text[end - 1] == "\\"
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
        elif c in "]}":
            if depth == 0:
                break
            depth -= 1
        elif c == "," and depth == 0:
            break
        end += 1
    return text[:at] + draw(_HOSTILE_VALUES) + text[end:]


def _garble(draw: st.DrawFn, text: str) -> str:
    """Truncated, with trailing bytes, wrapped in whitespace JSON does or does not allow, or a NUL put inside."""
    how = draw(st.sampled_from(["truncate", "trail", "space", "formfeed", "nul", "surrogate"]))
    if how == "truncate":
        return text[: draw(st.integers(0, max(len(text) - 1, 0)))]
    if how == "trail":
        return text + draw(st.sampled_from(["x", "}", ",{}", " ", "\n", "\x00"]))
    if how == "space":
        return f" \t\r\n{text}\n "
    if how == "formfeed":
        return f"\x0c{text}"
    at = draw(st.integers(0, len(text)))
    return text[:at] + ("\x00" if how == "nul" else "\ud800") + text[at:]


@st.composite
def hostile_texts(draw: st.DrawFn) -> str:
    """An event's text, valid or mutated as a value (``mutated_events``) and then as text, a few times over."""
    event = draw(st.one_of(mutated_events(), st.sampled_from(draw(event_sets(2, 2).filter(bool)))))
    text = _render(draw, event)
    for _ in range(draw(st.integers(0, 2))):
        mutate = draw(st.sampled_from([_insert_member, _repeat_member, _replace_value, _garble]))
        text = mutate(draw, text)
    return text


@settings(max_examples=600, deadline=None, database=None)
@given(hostile_texts())
def test_the_typed_decoder_answers_as_the_reference_path_for_valid_and_hostile_texts(text):
    assert decode_row(text) == reference(text)


@settings(max_examples=100, deadline=None, database=None)
@given(st.lists(hostile_texts(), max_size=8))
def test_a_batch_decoded_on_the_hot_path_is_the_reference_answer_of_each_text(texts):
    batch = decode_batch(texts)

    answers = [reference(text) for text in texts]
    valid = {}
    for answer in answers:
        if isinstance(answer, tuple):
            valid.setdefault((answer[0], answer[1]), answer)
    assert batch.rows == list(valid.values())
    assert [rejection for rejection, _ in batch.rejections] == [a for a in answers if not isinstance(a, tuple)]
    assert batch.repeats == len(texts) - len(batch.rejections) - len(valid)


@settings(max_examples=100, deadline=None, database=None)
@given(event_sets(3, 3).filter(bool))
def test_the_brokers_compact_events_take_the_typed_path(events):
    for event in events:
        event["time"] = format_time(parse_time(event["time"]))  # as the broker writes it: Z, 6 digits
        text = json.dumps(event, separators=(",", ":"))

        assert _typed_row(text) is not None
        assert _typed_row(text) == reference(text)
