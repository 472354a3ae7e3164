"""The file reader streams events out of JSON lines and batch arrays without reading a file whole."""

from __future__ import annotations

import io
import json

from fanmeter.reader import CHUNK, iter_event_texts


class CountingStream(io.StringIO):
    """A text stream that remembers how many characters were read from it."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.characters_read = 0

    def read(self, size: int | None = -1) -> str:
        text = super().read(size)
        self.characters_read += len(text)
        return text


def texts(content: str) -> list[str]:
    return list(iter_event_texts(io.StringIO(content)))


def test_json_lines_yield_one_event_per_line_and_skip_blank_lines():
    assert texts('{"a": 1}\n\n  {"b": 2}  \n') == ['{"a": 1}', '{"b": 2}']


def test_a_batch_array_file_yields_each_element_with_its_original_text():
    assert texts(' \n[{"a": 1},\n {"b": [1, 2]}, {"c": "x]"} ]\n') == ['{"a": 1}', '{"b": [1, 2]}', '{"c": "x]"}']


def test_a_line_holding_a_batch_array_is_split_into_its_events():
    assert [json.loads(t) for t in texts('{"a": 1}\n[{"b": 2}, {"c": 3}]\n')] == [{"a": 1}, {"b": 2}, {"c": 3}]


def test_malformed_text_is_passed_on_for_the_pipeline_to_reject():
    assert texts('{"a": 1}\n{broken\n[1, 2\n') == ['{"a": 1}', "{broken", "[1, 2"]
    assert texts('[{"a": 1}, {broken}]') == ['{"a": 1}', "{broken}]"]


def test_an_empty_array_and_an_empty_file_yield_nothing():
    assert texts("[]") == [] and texts("") == []


def test_a_large_batch_array_is_read_chunk_by_chunk_not_whole():
    event = json.dumps({"specversion": "1.0", "id": "x" * 200, "data": {"n": 1}})
    stream = CountingStream("[" + ",".join([event] * 50_000) + "]")
    events = iter_event_texts(stream)

    first = next(events)

    assert first == event
    assert stream.characters_read <= 2 * CHUNK < len(stream.getvalue())
    assert sum(1 for _ in events) == 49_999


def test_an_element_nested_too_deeply_to_parse_is_passed_on_whole_and_the_rest_still_read():
    deep = "[" * 5000 + '"]\\"]"' + "]" * 5000  # a string holding brackets and an escaped quote inside
    assert texts('[{"a": 1},' + deep + ',{"b": 2}]') == ['{"a": 1}', deep, '{"b": 2}']
    assert texts('{"a": 1}\n' + "[" * 100_000 + "\n" + '{"b": 2}\n') == ['{"a": 1}', "[" * 100_000, '{"b": 2}']
    assert texts("[" * 100_000) == ["[" * 99_999]  # unterminated: the rest, for the pipeline to reject


def test_an_element_with_an_integer_over_the_digit_limit_is_passed_on_whole_and_the_rest_still_read():
    digits = "9" * 5000  # over Python's 4,300-digit limit: the parser refuses it, though it is JSON
    assert texts(f'[{{"count": {digits}}}, {digits} ,{{"b": 2}}]') == [f'{{"count": {digits}}}', digits, '{"b": 2}']


def test_a_line_holding_a_batch_array_keeps_each_event_as_written_so_a_key_named_twice_reaches_the_pipeline():
    assert texts('[{"count": 1, "count": 1000000000}, {"b": 2}]\n') == ['{"count": 1, "count": 1000000000}', '{"b": 2}']


def test_json_lines_whose_first_line_holds_a_batch_array_yield_every_line_after_it():
    assert texts('[{"a": 1}]\n{"b": 2}\n[{"c": 3}] \n') == ['{"a": 1}', '{"b": 2}', '{"c": 3}']
    assert texts('[{"a": 1}] junk\n{"b": 2}') == ['{"a": 1}', "junk", '{"b": 2}']  # junk: rejected, not dropped


def test_text_that_is_not_json_in_a_batch_array_is_passed_on_to_its_line_end_and_reading_goes_on():
    assert texts('[{"a": 1},\n{broken},\n{"b": 2}]') == ['{"a": 1}', "{broken},", '{"b": 2}']
