"""WebSocket-over-HTTP: the ``application/websocket-events`` body and GRIP control messages.

Each event is ``TYPE\\r\\n`` or ``TYPE <hex length>\\r\\n<content>\\r\\n``; types are OPEN, TEXT,
BINARY, PING, PONG, CLOSE (content: 2-byte code) and DISCONNECT. A TEXT starting with ``c:`` from
an origin that enabled the ``grip`` extension is a control message for the broker.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from broker.exceptions import WsEventsError

CONTENT_TYPE = "application/websocket-events"
EVENT_TYPES = frozenset({"OPEN", "TEXT", "BINARY", "PING", "PONG", "CLOSE", "DISCONNECT"})
CONTROL_PREFIX = b"c:"
DEFAULT_MESSAGE_PREFIX = b"m:"
CONTROL_TYPES = frozenset({"subscribe", "unsubscribe", "detach", "keep-alive", "close"})


@dataclass(frozen=True, slots=True)
class WsEvent:
    type: str
    content: bytes | None = None


@dataclass(frozen=True, slots=True)
class Control:
    """A ``c:{...}`` message: ``channel`` for (un)subscribe, ``content``/``timeout_s`` for keep-alive."""

    type: str
    channel: str | None = None
    content: bytes = b""
    timeout_s: int | None = None


def encode_events(events: list[WsEvent]) -> bytes:
    """Encode events for a request body.

    >>> encode_events([WsEvent("OPEN"), WsEvent("TEXT", b"hi")])
    b'OPEN\\r\\nTEXT 2\\r\\nhi\\r\\n'
    """
    out = bytearray()
    for event in events:
        if event.content is None:
            out += f"{event.type}\r\n".encode()
        else:
            out += f"{event.type} {len(event.content):x}\r\n".encode() + event.content + b"\r\n"
    return bytes(out)


def decode_events(body: bytes) -> list[WsEvent]:
    """Decode a response body; a malformed body raises ``WsEventsError``."""
    events, start = [], 0
    while start < len(body):
        end = body.find(b"\r\n", start)
        if end == -1:
            raise WsEventsError("websocket-events: event line without CRLF")
        name, _, size = body[start:end].decode("latin-1").partition(" ")
        if name not in EVENT_TYPES:
            raise WsEventsError(f"websocket-events: unknown event type {name!r}")
        start = end + 2
        if not size:
            events.append(WsEvent(name))
            continue
        try:
            length = int(size, 16)
        except ValueError:
            raise WsEventsError(f"websocket-events: bad content length {size!r}") from None
        content = body[start : start + length]
        if len(content) != length or body[start + length : start + length + 2] != b"\r\n":
            raise WsEventsError("websocket-events: content shorter than its length")
        events.append(WsEvent(name, content))
        start += length + 2
    return events


def close_code(event: WsEvent) -> int | None:
    """The close code carried by a CLOSE event, if any."""
    if event.content is None or len(event.content) < 2:
        return None
    return int(struct.unpack(">H", event.content[:2])[0])


def close_event(code: int | None) -> WsEvent:
    return WsEvent("CLOSE", struct.pack(">H", code) if code is not None else None)


def grip_message_prefix(extensions: str | None) -> bytes | None:
    """The message prefix if the origin accepted the ``grip`` extension, else None (no control messages).

    >>> grip_message_prefix('grip; message-prefix=""')
    b''
    """
    if not extensions:
        return None
    for extension in extensions.split(","):
        name, *params = (p.strip() for p in extension.split(";"))
        if name.lower() != "grip":
            continue
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "message-prefix":
                return value.strip().strip('"').encode()
        return DEFAULT_MESSAGE_PREFIX
    return None


def parse_control(content: bytes) -> Control:
    """Parse the JSON after ``c:``; unknown or malformed messages raise ``WsEventsError``."""
    try:
        doc: Any = json.loads(content[len(CONTROL_PREFIX) :])
    except ValueError:
        raise WsEventsError("control message is not JSON") from None
    if not isinstance(doc, dict) or doc.get("type") not in CONTROL_TYPES:
        raise WsEventsError(f"control message type must be one of {sorted(CONTROL_TYPES)}")
    kind = doc["type"]
    if kind in ("subscribe", "unsubscribe"):
        if not isinstance(doc.get("channel"), str) or not doc["channel"]:
            raise WsEventsError(f"{kind} needs a channel")
        return Control(kind, channel=doc["channel"])
    if kind == "keep-alive":
        timeout = doc.get("timeout", 55)
        if type(timeout) is not int or timeout <= 0:
            raise WsEventsError("keep-alive timeout must be a positive integer")
        content_text = doc.get("content", "")
        return Control(kind, content=str(content_text).encode(), timeout_s=timeout)
    return Control(kind)
