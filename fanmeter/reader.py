"""Stream CloudEvents out of files without holding a file in memory.

A file is either JSON lines (one event, or one batch array, per line) or a single
batch array (``application/cloudevents-batch+json``). Each event is yielded as its
original JSON text so that the worker, not the reader, decides what is malformed.
"""

from __future__ import annotations

import io
import json
from collections.abc import Generator, Iterable, Iterator
from typing import IO

CHUNK = 1 << 20
_decoder = json.JSONDecoder()
_WHITESPACE = " \t\r\n"


def iter_event_texts(stream: IO[str]) -> Iterator[str]:
    """Yield the JSON text of each event in a JSON-lines or batch-array stream.

    Whatever follows a batch array's closing ``]`` is read as JSON lines: a JSON-lines file whose
    first line holds a batch array lost every line after it.
    """
    lines: Iterable[str] = stream
    if _peek_non_space(stream) == "[":
        after = yield from _iter_array(stream)
        lines = _lines(after, stream)
    for line in lines:
        text = line.strip()
        if text.startswith("["):
            yield from _split_array_line(text)
        elif text:
            yield text


def _lines(head: str, stream: IO[str]) -> Iterator[str]:
    """The lines of ``head`` followed by the rest of ``stream`` (``head`` may end mid-line)."""
    *complete, partial = head.split("\n")
    yield from complete
    yield partial + next(stream, "")
    yield from stream


def _peek_non_space(stream: IO[str]) -> str:
    position = stream.tell()
    while True:
        char = stream.read(1)
        if not char or char not in _WHITESPACE:
            stream.seek(position)
            return char
        position = stream.tell()


def _split_array_line(text: str) -> Iterator[str]:
    """A line holding a whole batch array: each element's text as written, or the line itself if it is malformed.

    As written, not decoded and dumped again: a re-dump would take the last of a key named twice and
    hide it from the pipeline, which rejects such an event (DESIGN.md "Event contract").
    """
    try:
        json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply for the parser
        yield text
        return
    yield from _iter_array(io.StringIO(text))


def _iter_array(stream: IO[str]) -> Generator[str, None, str]:
    """Yield each element of one top-level JSON array, reading the stream in chunks; return what was read
    past its closing ``]``.

    Text that is not JSON is yielded through the end of its line, and reading goes on from the next
    line, so one broken element does not take the good ones after it along.
    """
    buffer = stream.read(CHUNK).lstrip()[1:]  # drop "["
    position = 0
    while True:
        buffer, position = _refill(stream, buffer, position)
        position = _skip(buffer, position, _WHITESPACE + ",")
        if position < len(buffer) and buffer[position] == "]":
            return buffer[position + 1 :]
        if position >= len(buffer):
            if buffer:
                yield buffer  # unterminated array: the rest is reported malformed
            return ""
        try:
            _, end = _decoder.raw_decode(buffer, position)
        except json.JSONDecodeError:
            more = stream.read(CHUNK)
            if more:
                buffer = buffer[position:] + more
                position = 0
                continue
            line_end = buffer.find("\n", position)
            yield buffer[position:] if line_end < 0 else buffer[position:line_end].rstrip()
            if line_end < 0:
                return ""
            position = line_end + 1
            continue
        except (RecursionError, ValueError):  # nested too deeply, or an integer over Python's digit limit
            found = _element_end(buffer, position)  # well-formed, yet unparseable: pass it on whole, go on
            if found is None and (more := stream.read(CHUNK)):
                buffer, position = buffer[position:] + more, 0
                continue
            yield buffer[position : found or len(buffer)]
            if found is None:
                return ""
            position = found
            continue
        yield buffer[position:end]
        position = end


def _element_end(buffer: str, position: int) -> int | None:
    """Where the element starting at ``position`` ends (brackets counted outside strings, a scalar at the next
    separator), or None if ``buffer`` ends first: for elements the parser cannot take in."""
    if buffer[position] not in "[{":
        ends = [i for i in (buffer.find(c, position) for c in ",]" + _WHITESPACE) if i >= 0]
        return min(ends) if ends else None
    depth, in_string, escaped = 0, False, False
    for index in range(position, len(buffer)):
        char = buffer[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth == 0:
                return index + 1
    return None


def _refill(stream: IO[str], buffer: str, position: int) -> tuple[str, int]:
    if len(buffer) - position < CHUNK // 2:
        return buffer[position:] + stream.read(CHUNK), 0
    return buffer, position


def _skip(buffer: str, position: int, chars: str) -> int:
    while position < len(buffer) and buffer[position] in chars:
        position += 1
    return position
