"""The publish API's body (``{"items": [...]}``) parsed into items, and which transport takes which format.

An item reaches only subscribers whose transport has a format in it: long-poll takes
``http-response``, HTTP streaming and SSE take ``http-stream``, WebSocket takes ``ws-message``.
Errors raise ``PublishError`` whose message completes ``Invalid format: <reason>``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from broker.exceptions import PublishError

MAX_BODY_BYTES = 1_000_000  # DESIGN.md: 413 over 1 MB
FORMAT_NAMES = ("http-response", "http-stream", "ws-message")
TRANSPORT_FORMAT = {
    "long-poll": "http-response",
    "http-stream": "http-stream",
    "sse": "http-stream",
    "websocket": "ws-message",
}


@dataclass(frozen=True, slots=True)
class HttpResponseFormat:
    """Replaces a held long-poll response."""

    code: int = 200
    reason: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class HttpStreamFormat:
    """Appended to a held stream, or ``close`` ends it."""

    content: bytes = b""
    close: bool = False


@dataclass(frozen=True, slots=True)
class WsMessageFormat:
    """Sent to a WebSocket client as one message, or ``close`` ends the socket with ``code``."""

    content: bytes = b""
    binary: bool = False
    close: bool = False
    code: int | None = None
    reason: str = ""


Format = HttpResponseFormat | HttpStreamFormat | WsMessageFormat


@dataclass(frozen=True, slots=True)
class Item:
    channel: str
    formats: dict[str, Format]
    id: str | None = None
    prev_id: str | None = None
    no_seq: bool = False  # deliver at once even when ``prev_id`` is not the last id seen (Pushpin's no-seq)
    # The item as published (JSON object), so another node can parse exactly the same item.
    raw: Any = field(default=None, compare=False, repr=False)

    def format_for(self, transport: str) -> Format | None:
        """The format a connection of ``transport`` takes from this item, if any."""
        return self.formats.get(TRANSPORT_FORMAT[transport])

    @property
    def size(self) -> int:
        """Bytes of the largest payload among the formats (informational ``bytes`` of message.published)."""
        return max((payload_size(f) for f in self.formats.values()), default=0)


def payload_size(fmt: Format) -> int:
    if isinstance(fmt, HttpResponseFormat):
        return len(fmt.body)
    return len(fmt.content)


def parse_publish_body(body: bytes) -> tuple[Item, ...]:
    """Validate a publish body; every item must be valid or none is published (an empty list is valid).

    >>> parse_publish_body(b'{"items":[{"channel":"a","formats":{"http-stream":{"content":"hi"}}}]}')[0].channel
    'a'
    """
    try:
        doc = json.loads(body)
    except ValueError:
        raise PublishError("body is not valid JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
        raise PublishError('body must be an object with an "items" list')
    return tuple(_item(raw, index) for index, raw in enumerate(doc["items"]))


def _item(raw: Any, index: int) -> Item:
    where = f"items[{index}]"
    if not isinstance(raw, dict):
        raise PublishError(f"{where} must be an object")
    channel = raw.get("channel")
    if not isinstance(channel, str) or not channel:
        raise PublishError(f"{where}.channel must be a non-empty string")
    for key in ("id", "prev-id"):
        if key in raw and not isinstance(raw[key], str):
            raise PublishError(f"{where}.{key} must be a string")
    if not isinstance(raw.get("no-seq", False), bool):
        raise PublishError(f"{where}.no-seq must be true or false")
    formats = _formats_of(raw, where)
    # Format names this broker does not know are ignored, as Pushpin does: a publisher may send
    # formats for other transports, and the item still reaches the ones it has a format for.
    parsed = {
        name: _format(name, value, f"{where}.formats.{name}") for name, value in formats.items() if name in FORMAT_NAMES
    }
    return Item(channel, parsed, raw.get("id"), raw.get("prev-id"), raw.get("no-seq", False), raw)


def _formats_of(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """Formats under ``formats`` (DESIGN.md, Fastly) or as top-level keys (EPCP, as gripcontrol sends them)."""
    nested = raw.get("formats", {})
    if not isinstance(nested, dict):
        raise PublishError(f"{where}.formats must be an object")
    top = {name: raw[name] for name in FORMAT_NAMES if name in raw}  # EPCP: only known names are formats
    both = sorted(set(nested) & set(top))
    if both:
        raise PublishError(f"{where} has format {both[0]!r} both in formats and at the top level")
    formats = {**nested, **top}
    if not formats:
        raise PublishError(f"{where} has no formats (one of {', '.join(FORMAT_NAMES)})")
    return formats


def _format(name: str, raw: Any, where: str) -> Format:
    if not isinstance(raw, dict):
        raise PublishError(f"{where} must be an object")
    action = raw.get("action", "send")
    if action not in ("send", "close"):
        raise PublishError(f"{where}.action must be send or close, got {action!r}")
    if name == "http-response":
        return _http_response(raw, where)
    if name == "http-stream":
        if action == "close":
            return HttpStreamFormat(close=True)
        return HttpStreamFormat(_content(raw, "content", where, required=True))
    return _ws_message(raw, where, action == "close")


def _http_response(raw: dict[str, Any], where: str) -> HttpResponseFormat:
    code = raw.get("code", 200)
    if type(code) is not int or not 100 <= code <= 599:
        raise PublishError(f"{where}.code must be an HTTP status code")
    reason = raw.get("reason", "")
    if not isinstance(reason, str):
        raise PublishError(f"{where}.reason must be a string")
    headers = raw.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise PublishError(f"{where}.headers must map names to strings")
    return HttpResponseFormat(code, reason, tuple(headers.items()), _content(raw, "body", where, required=False))


def _ws_message(raw: dict[str, Any], where: str, close: bool) -> WsMessageFormat:
    if close:
        code = raw.get("code")
        if code is not None and (type(code) is not int or not 1000 <= code <= 4999):
            raise PublishError(f"{where}.code must be a WebSocket close code (1000-4999)")
        reason = raw.get("reason", "")
        return WsMessageFormat(close=True, code=code, reason=reason if isinstance(reason, str) else "")
    binary = "content-bin" in raw and "content" not in raw
    return WsMessageFormat(_content(raw, "content", where, required=True), binary=binary)


def _content(raw: dict[str, Any], name: str, where: str, required: bool) -> bytes:
    if name in raw:
        if not isinstance(raw[name], str):
            raise PublishError(f"{where}.{name} must be a string")
        return str(raw[name]).encode()
    binary = raw.get(f"{name}-bin")
    if binary is None:
        if required:
            raise PublishError(f"{where} needs {name} or {name}-bin")
        return b""
    if not isinstance(binary, str):
        raise PublishError(f"{where}.{name}-bin must be a base64 string")
    try:
        return base64.b64decode(binary, validate=True)
    except ValueError:
        raise PublishError(f"{where}.{name}-bin is not valid base64") from None
