"""WebSocket-over-HTTP: the ``application/websocket-events`` body and GRIP control messages.

Each event is ``TYPE\\r\\n`` or ``TYPE <hex length>\\r\\n<content>\\r\\n``; types are OPEN, TEXT,
BINARY, PING, PONG, CLOSE (content: 2-byte code) and DISCONNECT. A TEXT starting with ``c:`` from
an origin that enabled the ``grip`` extension is a control message for the broker.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from dataclasses import dataclass
from typing import Any

from broker.exceptions import WsEventsError

CONTENT_TYPE = "application/websocket-events"
EVENT_TYPES = frozenset({"OPEN", "TEXT", "BINARY", "PING", "PONG", "CLOSE", "DISCONNECT"})
CONTROL_PREFIX = b"c:"
DEFAULT_MESSAGE_PREFIX = b"m:"
CONTROL_TYPES = frozenset(
    {
        "subscribe",
        "unsubscribe",
        "detach",
        "session",
        "set-meta",
        "keep-alive",
        "send-delayed",
        "flush-delayed",
        "close",
    }
)
MESSAGE_TYPES = ("text", "binary", "ping", "pong")
DEFAULT_KEEP_ALIVE_S, DEFAULT_SEND_DELAYED_S = 55, 1  # Pushpin's
# A meta name becomes a header name (Meta-<name>) on every request to the origin.
META_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class WsEvent:
    type: str
    content: bytes | None = None


@dataclass(frozen=True, slots=True)
class Control:
    """A ``c:{...}`` message: ``channel`` for (un)subscribe, ``content``/``timeout_s`` for keep-alive,
    ``name``/``value`` for set-meta (``value`` None removes the name)."""

    type: str
    channel: str | None = None
    content: bytes = b""
    timeout_s: int | None = None
    name: str | None = None
    value: str | None = None
    filters: tuple[str, ...] = ()  # subscribe: subscription filters (broker.grip.filters)
    message_type: str = "text"  # keep-alive, send-delayed: text, binary, ping or pong
    interval: bool = False  # keep-alive mode=interval: every timeout_s, not after timeout_s of quiet


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
    """Parse the JSON after ``c:``; an unknown or malformed message raises ``WsEventsError``.

    The types are Pushpin 1.36's (``subscribe``, ``unsubscribe``, ``detach``, ``session``, ``set-meta``,
    ``keep-alive``, ``send-delayed``, ``flush-delayed``) and fanmeter's ``close``. The caller ignores a
    message this refuses, as Pushpin does: it never ends the client's connection.
    """
    try:
        doc: Any = json.loads(content[len(CONTROL_PREFIX) :])
    except (ValueError, RecursionError):
        raise WsEventsError("control message is not JSON") from None
    if not isinstance(doc, dict):
        raise WsEventsError("control message is not an object")
    kind = doc.get("type")
    if not isinstance(kind, str) or kind not in CONTROL_TYPES:
        raise WsEventsError(f"control message type must be one of {sorted(CONTROL_TYPES)}, got {_name(kind)}")
    if kind in ("subscribe", "unsubscribe"):
        if not isinstance(doc.get("channel"), str) or not doc["channel"]:
            raise WsEventsError(f"{kind} needs a channel")
        filters = doc.get("filters", []) if kind == "subscribe" else []
        if not isinstance(filters, list) or not all(isinstance(f, str) for f in filters):
            raise WsEventsError("subscribe filters must be a list of strings")
        return Control(kind, channel=doc["channel"], filters=tuple(filters))
    if kind == "set-meta":
        name, value = doc.get("name"), doc.get("value")
        if not isinstance(name, str) or not name or not META_NAME.fullmatch(name):
            raise WsEventsError("set-meta needs a name (letters, digits, '-' and '_')")
        if value is not None and (not isinstance(value, str) or any(c in value for c in "\r\n\0")):
            raise WsEventsError("set-meta value must be a string on one line")
        return Control(kind, name=name.lower(), value=value)
    if kind in ("keep-alive", "send-delayed"):
        return _timed_message(kind, doc)
    return Control(kind)


def _timed_message(kind: str, doc: dict[str, Any]) -> Control:
    """keep-alive and send-delayed, as Pushpin reads them: ``content`` or ``content-bin``, ``message-type``,
    ``timeout`` (keep-alive: 55 s, send-delayed: 1 s when absent or 0) and keep-alive's ``mode``
    (``idle``, the default, or ``interval``). A keep-alive without content turns keep-alives off
    (``timeout_s`` None)."""
    message_type = doc.get("message-type")
    if message_type is not None and message_type not in MESSAGE_TYPES:
        raise WsEventsError(f"{kind} message-type must be one of {', '.join(MESSAGE_TYPES)}")
    content: bytes | None = None
    if "content-bin" in doc:
        if not isinstance(doc["content-bin"], str):
            raise WsEventsError(f"{kind} content-bin must be a base64 string")
        try:
            content = base64.b64decode(doc["content-bin"], validate=True)
        except ValueError:
            raise WsEventsError(f"{kind} content-bin is not base64") from None
        message_type = message_type or "binary"
    elif "content" in doc:
        if not isinstance(doc["content"], str):
            raise WsEventsError(f"{kind} content must be a string")
        content = doc["content"].encode()
    timeout = doc.get("timeout", 0)
    if type(timeout) is not int or timeout < 0:
        raise WsEventsError(f"{kind} timeout must be a non-negative integer")
    mode = doc.get("mode", "idle")
    if not isinstance(mode, str):
        raise WsEventsError(f"{kind} mode must be a string")
    default = DEFAULT_KEEP_ALIVE_S if kind == "keep-alive" else DEFAULT_SEND_DELAYED_S
    if kind == "keep-alive" and content is None:
        return Control(kind)  # keep-alives off
    return Control(kind, content=content or b"", timeout_s=timeout or default, message_type=message_type or "text",
                   interval=mode == "interval")  # fmt: skip


def _name(kind: object) -> str:
    """A control message's type as it may be logged: a short printable string."""
    return repr(kind)[:40] if isinstance(kind, str) else type(kind).__name__


def control_name(content: bytes) -> str:
    """The type a control message names, for a log line (``?`` when it names none)."""
    try:
        doc: Any = json.loads(content[len(CONTROL_PREFIX) :])
    except (ValueError, RecursionError):
        return "(not JSON)"
    kind = doc.get("type") if isinstance(doc, dict) else None
    return _name(kind) if kind is not None else "(no type)"
