"""The publish API's body (``{"items": [...]}``) parsed into items, and which transport takes which format.

An item reaches only subscribers whose transport has a format in it: long-poll takes
``http-response``, HTTP streaming and SSE take ``http-stream``, WebSocket takes ``ws-message``.
Errors raise ``PublishError`` whose message completes ``Invalid format: <reason>``; every part of
a body is judged before any item is published: hostile JSON (nesting deeper than
``MAX_JSON_DEPTH``, integers longer than ``MAX_INT_DIGITS`` digits, non-finite numbers, strings
with a lone surrogate, a key named twice in an object) and ``http-response`` headers that are
not valid HTTP are refused; framing, hop-by-hop and ``Grip-*`` headers of an ``http-response``
are dropped here, once per item (the broker frames the response itself, as Pushpin does).
"""

from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from broker.exceptions import PublishError

MAX_BODY_BYTES = 1_000_000  # DESIGN.md: 413 over 1 MB
FORMAT_NAMES = ("http-response", "http-stream", "ws-message")
# RFC 6455: a close frame's reason fits in 123 bytes; 1004-1006 and 1015 are never sent on the wire.
MAX_CLOSE_REASON_BYTES = 123
UNSENDABLE_CLOSE_CODES = frozenset({1004, 1005, 1006, 1015})
MAX_JSON_DEPTH = 32  # arrays and objects within one another; a publish body needs 6
MAX_INT_DIGITS = 20  # longer integers are refused: no field of an item needs one
# An http-response header name is an RFC 9110 token; a value is Latin-1 without CR, LF, NUL or other
# control characters than tab.
HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
HEADER_VALUE = re.compile(r"^[\t\x20-\x7e\x80-\xff]*$")
# Headers of a published http-response the broker never passes on: framing (it computes its own),
# hop-by-hop headers, and GRIP's (below, by prefix).
RESPONSE_HEADERS_DROPPED = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer", "upgrade",
     "proxy-connection", "proxy-authenticate", "proxy-authorization"}
)  # fmt: skip
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
    hint: bool = False  # action hint/refresh: the long-poll asks its origin again instead


@dataclass(frozen=True, slots=True)
class HttpStreamFormat:
    """Appended to a held stream, or ``close`` ends it."""

    content: bytes = b""
    close: bool = False
    hint: bool = False  # action hint/refresh: a stream with a next link fetches it


@dataclass(frozen=True, slots=True)
class WsMessageFormat:
    """Sent to a WebSocket client as one message, or ``close`` ends the socket with ``code``."""

    content: bytes = b""
    binary: bool = False
    close: bool = False
    code: int | None = None
    reason: str = ""
    frame: str = ""  # type ping or pong: a control frame, which ASGI cannot send (neither sent nor metered)
    hint: bool = False  # action hint/refresh: nothing for a WebSocket (ignored, as Pushpin)


# Pushpin's publish actions: hint and refresh both ask the origin (a stream's next link, a long-poll's retry).
ACTIONS = ("send", "close", "hint", "refresh")
WS_TYPES = ("text", "binary", "ping", "pong")


Format = HttpResponseFormat | HttpStreamFormat | WsMessageFormat


@dataclass(frozen=True, slots=True)
class Item:
    channel: str
    formats: dict[str, Format]
    id: str | None = None
    prev_id: str | None = None
    no_seq: bool = False  # deliver at once even when ``prev_id`` is not the last id seen (Pushpin's no-seq)
    meta: dict[str, str] | None = field(default=None, compare=False)  # for subscription filters (skip-self...)
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
    doc = decode_json(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
        raise PublishError('body must be an object with an "items" list')
    return tuple(_item(raw, index) for index, raw in enumerate(doc["items"]))


def decode_json(body: bytes) -> Any:
    """``body`` as JSON, refusing what the rest of the broker (its outbox, Redis, clients) cannot carry.

    Cheap where bodies are ordinary: the nesting is walked only when the body has more brackets than
    the limit, and strings are checked for lone surrogates only when the body escapes one (``\\ud...``).
    """
    try:
        doc = json.loads(body, object_pairs_hook=_object, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except RecursionError:
        raise PublishError(f"body nests arrays or objects deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as error:  # UnicodeDecodeError too
        reason = " (not UTF-8)" if isinstance(error, UnicodeDecodeError) else ""
        raise PublishError(f"body is not valid JSON{reason}") from None
    if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH and _too_deep(doc):
        raise PublishError(f"body nests arrays or objects deeper than {MAX_JSON_DEPTH} levels")
    if b"\\ud" in body or b"\\uD" in body:
        try:
            json.dumps(doc, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise PublishError("a string holds a lone surrogate (\\ud800-\\udfff), which is not text") from None
    return doc


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object that names no key twice: ``{"channel": "a", "channel": "b"}`` is ambiguous, not last-wins."""
    doc = dict(pairs)
    if len(doc) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise PublishError(f"an object names the key {key!r} twice")
            seen.add(key)
    return doc


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise PublishError(f"a number has more than {MAX_INT_DIGITS} digits")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise PublishError("a number is too large")
    return value


def _constant(text: str) -> Any:
    raise PublishError(f"{text} is not a JSON number")


def _too_deep(doc: Any) -> bool:
    level: list[Any] = [doc]
    for _depth in range(MAX_JSON_DEPTH):
        level = [
            child
            for node in level
            if isinstance(node, (dict, list))
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, (dict, list))
        ]
        if not level:
            return False
    return True


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
    return Item(
        channel, parsed, raw.get("id"), raw.get("prev-id"), raw.get("no-seq", False), raw=raw, meta=_meta(raw, where)
    )


def _meta(raw: dict[str, Any], where: str) -> dict[str, str] | None:
    """The item's ``meta``: an object of strings, for the subscribers' filters."""
    meta = raw.get("meta")
    if meta is None:
        return None
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise PublishError(f"{where}.meta must be an object of strings")
    return meta


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
    if action not in ACTIONS:
        raise PublishError(f"{where}.action must be one of {', '.join(ACTIONS)}, got {action!r}")
    if action in ("hint", "refresh"):
        if action == "refresh" and name != "http-response":  # Pushpin 1.36 refuses it elsewhere
            raise PublishError(f"{where}.action refresh is for http-response only")
        if name == "http-response":
            return HttpResponseFormat(hint=True)
        return HttpStreamFormat(hint=True) if name == "http-stream" else WsMessageFormat(hint=True)
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
    return HttpResponseFormat(code, reason, _response_headers(raw.get("headers", {}), f"{where}.headers"),
                              _content(raw, "body", where, required=False))  # fmt: skip


def _response_headers(headers: Any, where: str) -> tuple[tuple[str, str], ...]:
    """The headers a client gets: valid HTTP (else refused), without framing, hop-by-hop and ``Grip-*`` ones.

    An object maps names to values; a list of ``[name, value]`` pairs may repeat a name.
    """
    if isinstance(headers, dict):
        pairs = list(headers.items())
    elif isinstance(headers, list) and all(isinstance(p, list) and len(p) == 2 for p in headers):
        pairs = [(p[0], p[1]) for p in headers]
    else:
        raise PublishError(f"{where} must map names to strings")
    kept: list[tuple[str, str]] = []
    for name, value in pairs:
        if not isinstance(name, str) or not isinstance(value, str):
            raise PublishError(f"{where} must map names to strings")
        if not HEADER_NAME.match(name):
            raise PublishError(f"{where}: {name!r} is not a valid header name")
        if not HEADER_VALUE.match(value):
            raise PublishError(f"{where}.{name}: the value holds CR, LF, NUL, another control character, "
                               "or a character outside Latin-1")  # fmt: skip
        lowered = name.lower()
        if lowered not in RESPONSE_HEADERS_DROPPED and not lowered.startswith("grip-"):
            kept.append((name, value.strip(" \t")))
    return tuple(kept)


def _ws_message(raw: dict[str, Any], where: str, close: bool) -> WsMessageFormat:
    if close:
        code = raw.get("code")
        if code is not None and (type(code) is not int or not 1000 <= code <= 4999 or code in UNSENDABLE_CLOSE_CODES):
            raise PublishError(f"{where}.code must be a WebSocket close code a server may send (1000-4999)")
        reason = raw.get("reason", "")
        reason = reason if isinstance(reason, str) else ""
        if len(reason.encode("utf-8")) > MAX_CLOSE_REASON_BYTES:  # the surrogate check ran before: it encodes
            raise PublishError(f"{where}.reason must be at most {MAX_CLOSE_REASON_BYTES} bytes (RFC 6455)")
        return WsMessageFormat(close=True, code=code, reason=reason)
    kind = raw.get("type")
    if kind is not None and kind not in WS_TYPES:
        raise PublishError(f"{where}.type must be one of {', '.join(WS_TYPES)}, got {kind!r}")
    if kind in ("ping", "pong"):
        return WsMessageFormat(_content(raw, "content", where, required=False), frame=kind)
    binary = kind == "binary" if kind is not None else "content-bin" in raw and "content" not in raw
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
