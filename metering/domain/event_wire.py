"""The brokers' event shape as msgspec types: one C-level decode checks most of the contract at once.

``typed_event`` decodes an event text straight into one of five typed structs (tagged by
``type``) whose fields carry the contract's limits (1-256 characters, 0..MAX_COUNT, the
transports). It only ever says "this is certainly that valid event" or "not sure" (None):
it never gives a reason. ``metering.domain.event_rows`` takes a struct to its row and hands
every "not sure" to the reference path (``load_json`` + ``parse_event``), which decides and
gives the reason, so the reasons stay exactly those of the reference path.

What the structs cannot see by themselves, and how it is made certain here:

- a key given twice (msgspec keeps the last): every key and string value of a struct is
  known, so the text must hold exactly twice as many ``"`` as it has strings; a repeated key
  adds at least one more string (``quotes``);
- NUL or a lone surrogate in a string, and escapes in general: only plain ASCII text without a
  backslash comes here, so no string can hide one (``load_json`` inspects only texts with
  either);
- fields the contract does not know: forbidden, so they go to the reference path, which
  checks their strings and keys too.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from metering.domain.events import MAX_BYTES, MAX_COUNT, MAX_ID_LENGTH, EventType

Ident = Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH)]
Count = Annotated[int, Meta(ge=0, le=MAX_COUNT)]
Bytes = Annotated[int, Meta(ge=0, le=MAX_BYTES)]
Transport = Literal["sse", "http-stream", "long-poll", "websocket"]


class _Data(Struct, forbid_unknown_fields=True, kw_only=True):
    account_id: Ident
    service_id: Ident


class OpenData(_Data, forbid_unknown_fields=True, kw_only=True):
    connection_id: Ident
    transport: Transport


class AliveData(_Data, forbid_unknown_fields=True, kw_only=True):
    connection_id: Ident
    bytes_out: Bytes
    bytes_in: Bytes


class CloseData(AliveData, forbid_unknown_fields=True, kw_only=True):
    reason: str | None | UnsetType = UNSET


class MessageData(_Data, forbid_unknown_fields=True, kw_only=True):
    channel: Ident
    count: Count
    bytes: Bytes


class _Envelope(Struct, forbid_unknown_fields=True, kw_only=True, tag_field="type"):
    """The CloudEvents attributes every event carries; ``time`` is checked by the caller."""

    specversion: Literal["1.0"]
    id: Ident
    source: Ident
    time: str
    subject: str | UnsetType = UNSET
    datacontenttype: Literal["application/json"] | UnsetType = UNSET
    # Five keys with string values (specversion, id, source, type, time) and the key data, each
    # string two quotes; the data's keys and strings are its type's own count.
    _ATTRIBUTE_QUOTES: ClassVar[int] = 2 * (5 + 6)


class Open(_Envelope, tag=EventType.CONNECTION_OPEN.value):
    TYPE: ClassVar[str] = EventType.CONNECTION_OPEN.value
    data: OpenData
    DATA_QUOTES: ClassVar[int] = 2 * (4 + 4)


class Alive(_Envelope, tag=EventType.CONNECTION_ALIVE.value):
    TYPE: ClassVar[str] = EventType.CONNECTION_ALIVE.value
    data: AliveData
    DATA_QUOTES: ClassVar[int] = 2 * (5 + 3)


class Close(_Envelope, tag=EventType.CONNECTION_CLOSE.value):
    TYPE: ClassVar[str] = EventType.CONNECTION_CLOSE.value
    data: CloseData
    DATA_QUOTES: ClassVar[int] = 2 * (5 + 3)


class Published(_Envelope, tag=EventType.MESSAGE_PUBLISHED.value):
    TYPE: ClassVar[str] = EventType.MESSAGE_PUBLISHED.value
    data: MessageData
    DATA_QUOTES: ClassVar[int] = 2 * (5 + 3)


class Delivered(_Envelope, tag=EventType.MESSAGE_DELIVERED.value):
    TYPE: ClassVar[str] = EventType.MESSAGE_DELIVERED.value
    data: MessageData
    DATA_QUOTES: ClassVar[int] = 2 * (5 + 3)


TypedEvent = Open | Alive | Close | Published | Delivered

_DECODER = msgspec.json.Decoder(TypedEvent)


def typed_event(text: str) -> TypedEvent | None:
    """The typed event of a plain-ASCII, escape-free text that is one, with no key twice; else None."""
    if not text.isascii() or "\\" in text:
        return None
    try:
        event = _DECODER.decode(text)
    except msgspec.DecodeError:  # malformed, a field unknown, missing or out of its limits
        return None
    return event if text.count('"') == quotes(event) else None


def quotes(event: TypedEvent) -> int:
    """How many ``"`` the text of ``event`` holds when it names each key once (no string holds one).

    An optional attribute given adds its key and string value (4); a close's reason adds its
    key (2), and 2 more when it is a string rather than null.
    """
    count = event._ATTRIBUTE_QUOTES + event.DATA_QUOTES
    if event.subject is not UNSET:
        count += 4
    if event.datacontenttype is not UNSET:
        count += 4
    if type(event) is Close and event.data.reason is not UNSET:
        count += 2 if event.data.reason is None else 4
    return count
