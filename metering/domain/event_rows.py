"""The ingest hot path: event texts straight to the rows ``raw_event`` stores.

``decode_row`` answers exactly as ``decode_event`` does (DESIGN.md "Event contract"), only
faster for the events a broker actually sends. ``_typed_row`` decodes the brokers' plain
ASCII texts with msgspec straight into typed structs (``metering.domain.event_wire``); for other
texts, after ``load_json``, ``_common_row`` checks the usual shape of a valid event in one pass
and builds the row tuple directly, without the ``MeteringEvent``
value, the per-field helpers or ``datetime``; anything it is not sure of (an unusual
timestamp, a failed check, an optional field in an unusual form) it hands to
``parse_event``, which decides and gives the reason. A property test holds the two equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, TypeGuard

from msgspec import UNSET

from metering.domain.event_wire import CloseData, MessageData, OpenData, typed_event
from metering.domain.events import (
    MAX_BYTES,
    MAX_COUNT,
    MAX_ID_LENGTH,
    TRANSPORTS,
    EventType,
    MeteringEvent,
    Rejection,
    _Invalid,
    load_json,
    malformed_json,
    parse_event,
    parse_time,
)

EVENT_FIELDS = (
    "source", "event_id", "type", "time_us", "account_id", "service_id", "connection_id", "transport", "channel",
    "count", "bytes_out", "bytes_in", "reason",
)  # fmt: skip
EventRow = tuple[
    str, str, str, int, str, str, str | None, str | None, str | None, int | None, int | None, int | None, str | None
]
"""A valid event as its ``raw_event`` columns, in ``EVENT_FIELDS`` order (None where its type has none).

A plain tuple, not a NamedTuple: CPython's collector untracks a plain tuple of atoms but never a
subclass's instance, and a NamedTuple row cost 1.0-1.3 µs more CPU per event (+20 % decoding
100,000 events in 5,000-event batches). Only this module reads its positions (``DecodedBatch``).
"""
_SOURCE: Final = 0  # positions in EVENT_FIELDS (a unit test checks them)
_EVENT_ID: Final = 1
_CONNECTION_ID: Final = 6

_OPEN, _ALIVE = EventType.CONNECTION_OPEN.value, EventType.CONNECTION_ALIVE.value
_CLOSE = EventType.CONNECTION_CLOSE.value
_MESSAGE_TYPES = frozenset({EventType.MESSAGE_PUBLISHED.value, EventType.MESSAGE_DELIVERED.value})


def decode_row(text: str) -> EventRow | Rejection:
    """Decode and validate one event's JSON text: its row if valid, else the rejection ``decode_event`` gives."""
    row = _typed_row(text)
    if row is not None:
        return row
    try:
        raw = load_json(text)
    except ValueError as error:
        return malformed_json(error)
    row = _common_row(raw) if type(raw) is dict else None
    if row is not None:
        return row
    parsed = parse_event(raw)
    return parsed if isinstance(parsed, Rejection) else event_row(parsed)


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """A batch of event texts decoded: its distinct valid events' rows, its rejections, its repeats."""

    rows: list[EventRow]  # the first of a repeated (source, id) stands
    rejections: list[tuple[Rejection, str]]  # each with the text it came from
    repeats: int  # valid events repeated within the batch

    @property
    def has_connection_events(self) -> bool:
        """Whether any row is a connection event (a rollup pass has something to fold)."""
        return any(row[_CONNECTION_ID] is not None for row in self.rows)


def decode_batch(payloads: Sequence[str]) -> DecodedBatch:
    """Decode a batch's event texts into the rows of distinct valid events and rejections; count repeats."""
    rows: dict[tuple[str, str], EventRow] = {}
    rejections: list[tuple[Rejection, str]] = []
    for payload in payloads:
        row = decode_row(payload)
        if isinstance(row, Rejection):
            rejections.append((row, payload))
        else:
            rows.setdefault((row[_SOURCE], row[_EVENT_ID]), row)
    return DecodedBatch(list(rows.values()), rejections, len(payloads) - len(rejections) - len(rows))


def event_row(event: MeteringEvent) -> EventRow:
    """The row of a validated event (the reference path's result in ``decode_row``'s shape)."""
    return (
        event.source, event.id, event.type.value, event.time_us, event.account_id, event.service_id,
        event.connection_id, event.transport, event.channel, event.count, event.bytes_out, event.bytes_in,
        event.reason,
    )  # fmt: skip


def _ident(value: Any) -> TypeGuard[str]:
    return type(value) is str and 0 < len(value) <= MAX_ID_LENGTH


def _counter(value: Any, ceiling: int) -> bool:
    return type(value) is int and 0 <= value <= ceiling  # bool is not exactly int


def _typed_row(text: str) -> EventRow | None:
    """The row of a broker-shaped valid event, decoded by msgspec (``event_wire``); None when the reference
    path must decide (3.3 µs an event against 6.8 through ``_common_row``, bench events, one core)."""
    event = typed_event(text)
    if event is None:
        return None
    data, time_us = event.data, _common_time(event.time)
    if time_us is None or (event.subject is not UNSET and event.subject != data.service_id):
        return None
    if isinstance(data, MessageData):
        return (event.source, event.id, event.TYPE, time_us, data.account_id, data.service_id, None, None,
                data.channel, data.count, data.bytes, None, None)  # fmt: skip
    if isinstance(data, OpenData):
        return (event.source, event.id, event.TYPE, time_us, data.account_id, data.service_id, data.connection_id,
                data.transport, None, None, None, None, None)  # fmt: skip
    reason = data.reason[:MAX_ID_LENGTH] if isinstance(data, CloseData) and isinstance(data.reason, str) else None
    return (event.source, event.id, event.TYPE, time_us, data.account_id, data.service_id, data.connection_id,
            None, None, None, data.bytes_out, data.bytes_in, reason)  # fmt: skip


def _common_row(raw: dict[str, Any]) -> EventRow | None:
    """The row of an event valid in the usual way; None when ``parse_event`` must decide."""
    source, event_id, kind, data = raw.get("source"), raw.get("id"), raw.get("type"), raw.get("data")
    if not (
        raw.get("specversion") == "1.0"
        and _ident(source)
        and _ident(event_id)
        and type(kind) is str
        and type(data) is dict
        and raw.get("datacontenttype", "application/json") == "application/json"
    ):
        return None
    time_us = _common_time(raw.get("time"))
    account_id, service_id = data.get("account_id"), data.get("service_id")
    subject = raw.get("subject")
    if time_us is None or not (_ident(account_id) and _ident(service_id) and subject in (None, service_id)):
        return None
    if kind in _MESSAGE_TYPES:
        channel, count, size = data.get("channel"), data.get("count"), data.get("bytes")
        if _ident(channel) and _counter(count, MAX_COUNT) and _counter(size, MAX_BYTES):
            return (source, event_id, kind, time_us, account_id, service_id, None, None, channel, count, size, None,
                    None)  # fmt: skip
        return None
    connection_id = data.get("connection_id")
    if not _ident(connection_id):
        return None
    if kind == _OPEN:
        transport = data.get("transport")
        if type(transport) is str and transport in TRANSPORTS:
            return (source, event_id, kind, time_us, account_id, service_id, connection_id, transport, None, None,
                    None, None, None)  # fmt: skip
        return None
    bytes_out, bytes_in, reason = data.get("bytes_out"), data.get("bytes_in"), data.get("reason")
    if not (_counter(bytes_out, MAX_BYTES) and _counter(bytes_in, MAX_BYTES)):
        return None
    if kind == _ALIVE or (kind == _CLOSE and reason is None):
        reason = None  # an alive ignores any reason; a close's reason is optional
    elif kind != _CLOSE or type(reason) is not str:
        return None
    return (source, event_id, kind, time_us, account_id, service_id, connection_id, None, None, None, bytes_out,
            bytes_in, reason if reason is None else reason[:MAX_ID_LENGTH])  # fmt: skip


def _common_time(value: Any) -> int | None:
    """UTC microseconds of ``YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z`` (the brokers' shape), else None.

    The minute prefix is validated once by ``parse_time`` and cached (a broker's events share
    their minutes); the seconds and fraction are plain ASCII digits added on.
    """
    if type(value) is not str or not 20 <= len(value) <= 27 or value[-1] != "Z" or not value.isascii():
        return None
    minute = _minute_start(value[:16])
    seconds, fraction = value[17:19], value[20:-1]
    if (
        minute is None
        or value[16] != ":"
        or not seconds.isdigit()
        or seconds > "59"
        or (len(value) > 20 and (value[19] != "." or not fraction.isdigit()))
    ):
        return None
    return minute + int(seconds) * 1_000_000 + (int(fraction) * 10 ** (6 - len(fraction)) if fraction else 0)


@lru_cache(maxsize=4096)
def _minute_start(prefix: str) -> int | None:
    """The first microsecond of a ``YYYY-MM-DDTHH:MM`` minute, None unless ``parse_time`` accepts it."""
    try:
        return parse_time(prefix + ":00Z")
    except _Invalid:
        return None
