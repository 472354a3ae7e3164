"""``fanmeter ingest``'s file reader under hostile files: it never raises, and every good event between
hostile lines or array elements comes out as its own text, unchanged."""

from __future__ import annotations

import io
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from fanmeter.reader import iter_event_texts
from tests.hostile_events import hostile_json_texts, hostile_lines, well_formed
from tests.strategies import event_sets


@settings(max_examples=100, deadline=None, database=None)
@given(
    good=event_sets(max_connections=2, max_messages=3), hostile=st.lists(hostile_lines(), max_size=8), data=st.data()
)
def test_a_json_lines_file_yields_each_good_line_unchanged_whatever_lines_surround_it(good, hostile, data):
    good_texts = [json.dumps(event) for event in good]
    lines = list(hostile)
    for text in good_texts:
        lines.insert(data.draw(st.integers(0, len(lines))), text)

    texts = list(iter_event_texts(io.StringIO("\n".join(lines) + "\n")))

    for text in good_texts:
        assert text in texts


@settings(max_examples=100, deadline=None, database=None)
@given(
    good=event_sets(max_connections=2, max_messages=3),
    hostile=st.lists(hostile_json_texts().filter(well_formed), max_size=8),
    data=st.data(),
)
def test_a_batch_array_file_yields_each_good_element_unchanged_whatever_elements_surround_it(good, hostile, data):
    good_texts = [json.dumps(event) for event in good]
    elements = list(hostile)
    for text in good_texts:
        elements.insert(data.draw(st.integers(0, len(elements))), text)

    texts = list(iter_event_texts(io.StringIO("[" + ",\n".join(elements) + "]")))

    for text in good_texts:
        assert text in texts
    assert len(texts) == len(elements)
