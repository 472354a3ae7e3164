"""GRIP instructions from an origin's response: headers or an ``application/grip-instruct`` body.

Pure parsing only; the transports act on the returned values. Pushpin's documented
behaviour is the reference (pushpin.org/docs, "GRIP").
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from broker.exceptions import GripError

# Pushpin holds a response-mode request this long when the origin names no timeout.
DEFAULT_TIMEOUT_S = 55
DEFAULT_KEEP_ALIVE_S = 55
# Pushpin fetches a hold's next link after this long when the link names no timeout.
DEFAULT_LINK_TIMEOUT_S = 120
MAX_TIMEOUT_S = 24 * 3600
MIN_STATUS, MAX_STATUS = 200, 999
INSTRUCT_TYPE = "application/grip-instruct"

Headers = tuple[tuple[str, str], ...]


class HoldMode(StrEnum):
    RESPONSE = "response"
    STREAM = "stream"


@dataclass(frozen=True, slots=True)
class Channel:
    """A channel a held request subscribes to; ``prev_id`` is the last id the origin knew of."""

    name: str
    prev_id: str | None = None
    filters: tuple[str, ...] = ()  # subscription filters (broker.grip.filters), ``; filter=`` each


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """Content sent on a held stream after ``timeout_s`` seconds without other output."""

    content: bytes
    timeout_s: int
    interval: bool = False  # mode=interval: every timeout_s, however busy the stream (Pushpin; default idle)
    binary: bool = False  # a WebSocket keep-alive sent as a binary message


@dataclass(frozen=True, slots=True)
class OriginResponse:
    """The response the client gets first (stream) or on timeout (response hold)."""

    code: int
    reason: str
    headers: Headers
    body: bytes


@dataclass(frozen=True, slots=True)
class Hold:
    mode: HoldMode
    channels: tuple[Channel, ...]
    timeout_s: int = DEFAULT_TIMEOUT_S
    keep_alive: KeepAlive | None = None
    meta: tuple[tuple[str, str], ...] = ()  # Grip-Set-Meta: the connection's meta for its filters
    expose: frozenset[str] = frozenset()  # Grip-Expose-Headers (lowercased): origin headers a published answer keeps


@dataclass(frozen=True, slots=True)
class NextLink:
    """``Grip-Link: <uri>; rel=next; timeout=<s>``: where the broker asks the origin for what a stream missed."""

    uri: str
    timeout_s: int = DEFAULT_LINK_TIMEOUT_S


class BodyRest(Protocol):
    """The rest of an origin's body, still arriving (a stream hold's first body, relayed as it comes)."""

    async def read(self) -> bytes:
        """The bytes that arrived since the last read; b"" once the body ended."""

    def close(self) -> None:
        """Give the rest up (the origin's connection is closed unless the body had ended)."""


@dataclass(frozen=True, slots=True)
class Instruction:
    """What to do with one origin response: hold it (``hold`` set) or relay ``response`` as is."""

    hold: Hold | None
    response: OriginResponse
    link: NextLink | None = None
    ignored: tuple[str, ...] = ()  # Grip-* headers the broker does not know (logged, never an error)
    # A stream hold's body still to come after ``response.body`` (relays_as_it_comes), else None.
    rest: BodyRest | None = field(default=None, compare=False)


# The GRIP headers an origin's response may carry that the broker acts on; any other Grip-* is ignored.
KNOWN_GRIP_HEADERS = frozenset(
    {"grip-hold", "grip-channel", "grip-timeout", "grip-keep-alive", "grip-link", "grip-status", "grip-set-meta",
     "grip-expose-headers"}
)  # fmt: skip


def unknown_grip_headers(headers: Headers) -> tuple[str, ...]:
    """The names of ``Grip-*`` headers the broker does not act on, lowercased, each once."""
    names = {k.lower() for k, _ in headers if k[:5].lower() == "grip-"}
    return tuple(sorted(names - KNOWN_GRIP_HEADERS)) if names else ()


def is_grip_header(name: str) -> bool:
    return name.lower().startswith("grip-")


def strip_grip_headers(headers: Headers) -> Headers:
    """Drop every ``Grip-*`` header: clients never see the origin's instructions."""
    return tuple((k, v) for k, v in headers if not is_grip_header(k))


def header_values(headers: Headers, name: str) -> list[str]:
    lowered = name.lower()
    return [v for k, v in headers if k.lower() == lowered]


def media_type(headers: Headers) -> str:
    """The first ``Content-Type``'s media type, without its parameters ("" when there is none)."""
    values = header_values(headers, "Content-Type")
    return values[0].split(";")[0].strip() if values else ""


def split_params(value: str) -> tuple[str, dict[str, str]]:
    """Split ``first; a=1; b="x;y"`` into its first part and its parameters (quotes honoured).

    >>> split_params('chan; prev-id="7"')
    ('chan', {'prev-id': '7'})
    """
    parts = _split_outside_quotes(value, ";")
    params: dict[str, str] = {}
    for part in parts[1:]:
        key, _, raw = part.partition("=")
        params[key.strip().lower()] = _unquote(raw.strip())
    return _unquote(parts[0].strip()), params


def _split_outside_quotes(value: str, separator: str) -> list[str]:
    """Split on ``separator`` except inside double quotes or a leading ``<uri>`` (a link may hold commas)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = bracketed = False
    for char in value:
        if char == '"':
            quoted = not quoted
        elif char == "<" and not quoted and not "".join(current).strip():
            bracketed = True
        elif char == ">":
            bracketed = False
        if char == separator and not quoted and not bracketed:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"')
    return value


def parse_channels(values: list[str]) -> tuple[Channel, ...]:
    """Parse every ``Grip-Channel`` header value (comma-separated lists allowed)."""
    channels = []
    for value in values:
        for entry in _split_outside_quotes(value, ","):
            if not entry.strip():
                continue
            name, params = split_params(entry)
            if not name:
                raise GripError("Grip-Channel has an empty channel name")
            filters = _filter_params(entry) if "filter" in params else ()
            channels.append(Channel(name, params.get("prev-id"), filters))
    return tuple(channels)


def _filter_params(entry: str) -> tuple[str, ...]:
    """Every ``filter=`` parameter of a ``Grip-Channel`` entry, in order (a channel may name several)."""
    found = []
    for part in _split_outside_quotes(entry, ";")[1:]:
        key, _, raw = part.partition("=")
        if key.strip().lower() == "filter" and raw.strip():
            found.append(_unquote(raw.strip()))
    return tuple(found)


def parse_set_meta(values: list[str]) -> tuple[tuple[str, str], ...]:
    """``Grip-Set-Meta: name=value[, name=value]`` (Pushpin): the connection's meta its filters judge by.

    >>> parse_set_meta(['user=alice, role="a b"'])
    (('user', 'alice'), ('role', 'a b'))
    """
    meta = []
    for value in values:
        for entry in _split_outside_quotes(value, ","):
            name, has_value, raw = entry.partition("=")
            if not name.strip():
                raise GripError("Grip-Set-Meta cannot be empty")
            meta.append((name.strip(), _unquote(raw.strip()) if has_value else ""))
    return tuple(meta)


def parse_timeout(value: str | None, default: int = DEFAULT_TIMEOUT_S) -> int:
    if value is None or not value.strip():
        return default
    try:
        seconds = int(value.strip())
    except ValueError:
        raise GripError(f"Grip-Timeout must be an integer number of seconds, got {value!r}") from None
    if not 0 < seconds <= MAX_TIMEOUT_S:
        raise GripError(f"Grip-Timeout must be 1-{MAX_TIMEOUT_S} seconds, got {seconds}")
    return seconds


def parse_keep_alive(value: str) -> KeepAlive:
    """Parse ``Grip-Keep-Alive: <data>; format=raw|cstring|base64; timeout=<s>``.

    >>> parse_keep_alive('\\\\n; format=cstring; timeout=20')
    KeepAlive(content=b'\\n', timeout_s=20)
    """
    data, params = split_params(value)
    fmt = params.get("format", "raw")
    content = _decode_keep_alive(data, fmt)
    timeout = parse_timeout(params.get("timeout"), DEFAULT_KEEP_ALIVE_S)
    return KeepAlive(content, timeout, params.get("mode", "idle") == "interval")


def _decode_keep_alive(data: str, fmt: str) -> bytes:
    if fmt == "raw":
        return data.encode()
    if fmt == "cstring":
        return decode_cstring(data)
    if fmt == "base64":
        try:
            return base64.b64decode(data, validate=True)
        except ValueError:
            raise GripError("Grip-Keep-Alive has invalid base64 data") from None
    raise GripError(f"Grip-Keep-Alive format must be raw, cstring or base64, got {fmt!r}")


_CSTRING_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "0": "\0"}


def decode_cstring(data: str) -> bytes:
    """Decode C-style escapes (``\\n``, ``\\r``, ``\\t``, ``\\\\``) as Pushpin's cstring format does."""
    out, chars = [], iter(data)
    for char in chars:
        if char != "\\":
            out.append(char)
            continue
        escaped = next(chars, None)
        if escaped not in _CSTRING_ESCAPES:
            raise GripError(f"Grip-Keep-Alive has an unknown escape \\{escaped or ''}")
        out.append(_CSTRING_ESCAPES[escaped])
    return "".join(out).encode()


def parse_next_link(values: list[str]) -> NextLink | None:
    """The ``rel=next`` link among ``Grip-Link`` values (others are ignored), as Pushpin reads it.

    >>> parse_next_link(['</feed?after=3>; rel=next; timeout=30'])
    NextLink(uri='/feed?after=3', timeout_s=30)
    """
    found = None
    for value in values:
        for entry in _split_outside_quotes(value, ","):
            target, params = split_params(entry)
            if params.get("rel") != "next":
                continue
            if len(target) <= 2 or target[0] != "<" or target[-1] != ">":
                raise GripError(f"Grip-Link must be <uri>; rel=next, got {entry.strip()!r}")
            found = NextLink(target[1:-1], _link_timeout(params.get("timeout")))
    return found


def _link_timeout(value: str | None) -> int:
    if value is None:
        return DEFAULT_LINK_TIMEOUT_S
    try:
        seconds = int(value.strip())
    except ValueError:
        raise GripError(f"Grip-Link timeout must be an integer number of seconds, got {value!r}") from None
    if not 0 <= seconds <= MAX_TIMEOUT_S:
        raise GripError(f"Grip-Link timeout must be 0-{MAX_TIMEOUT_S} seconds, got {seconds}")
    return seconds


def relays_as_it_comes(_code: int, headers: Headers) -> bool:
    """Whether an origin response's body goes to the client as it arrives, not read whole first: a
    ``Grip-Hold: stream`` answered with headers (a grip-instruct body must be read to be understood)
    and no build-id filter (which renders the body whole, as Pushpin's proxy also waits for it then).

    >>> relays_as_it_comes(200, (("Grip-Hold", "stream"), ("Grip-Channel", "news")))
    True
    """
    holds = [v for k, v in headers if k.lower() == "grip-hold"]
    if not holds or holds[0].strip().lower() != HoldMode.STREAM or media_type(headers) == INSTRUCT_TYPE:
        return False
    try:
        channels = parse_channels([v for k, v in headers if k.lower() == "grip-channel"])
    except GripError:
        return False  # read whole: the instructions' error is the answer
    return not any("build-id" in channel.filters for channel in channels)


def instruction_from_response(code: int, reason: str, headers: Headers, body: bytes) -> Instruction:
    """An origin response's instructions: an ``application/grip-instruct`` body, else its headers."""
    if media_type(headers) == INSTRUCT_TYPE:
        return instruction_from_body(body, headers)
    return instruction_from_headers(code, reason, headers, body)


def parse_status(value: str) -> tuple[int, str]:
    """``Grip-Status: <code>[ <reason>]`` as Pushpin reads it: the code before the first space, the reason after.

    >>> parse_status("404 Nothing To See Here")
    (404, 'Nothing To See Here')
    """
    code_text, _, reason = value.strip().partition(" ")
    try:
        code = int(code_text)
    except ValueError:
        raise GripError(f"Grip-Status contains invalid status code {code_text!r}") from None
    # Pushpin takes 0-999; a client can only be answered a final status (no 1xx) the HTTP server can write.
    if not MIN_STATUS <= code <= MAX_STATUS:
        raise GripError(f"Grip-Status must be {MIN_STATUS}-{MAX_STATUS}, got {code}")
    if any(c in reason for c in "\r\n\0"):
        raise GripError("Grip-Status reason holds a line break")
    return code, reason.strip()


def _split_grip(headers: Headers) -> tuple[Headers, dict[str, list[str]]]:
    """One pass: the headers a client may see, and every ``Grip-*`` header's values by lowercased name."""
    kept: list[tuple[str, str]] = []
    grip: dict[str, list[str]] = {}
    for name, value in headers:
        if name[:5].lower() == "grip-":
            grip.setdefault(name.lower(), []).append(value)
        else:
            kept.append((name, value))
    return tuple(kept), grip


def instruction_from_headers(code: int, reason: str, headers: Headers, body: bytes) -> Instruction:
    """Read GRIP headers; without ``Grip-Hold`` the response is relayed as it is.

    ``Grip-Status`` replaces the status of the response the client gets, held or not (as Pushpin).
    The headers are read in one pass: this runs for every new connection.
    """
    kept, grip = _split_grip(headers)
    if not grip:
        return Instruction(None, OriginResponse(code, reason, kept, body))
    statuses = grip.get("grip-status")
    if statuses and statuses[0].strip():
        code, reason = parse_status(statuses[0])
    relayed = OriginResponse(code, reason, kept, body)
    link = parse_next_link(grip.get("grip-link", []))
    unknown = () if grip.keys() <= KNOWN_GRIP_HEADERS else tuple(sorted(grip.keys() - KNOWN_GRIP_HEADERS))
    holds = grip.get("grip-hold")
    if not holds:
        return Instruction(None, relayed, link, unknown)
    mode_name = holds[0].strip().lower()
    if mode_name not in (HoldMode.RESPONSE, HoldMode.STREAM):
        raise GripError(f"Grip-Hold must be response or stream, got {holds[0]!r}")
    channels = parse_channels(grip.get("grip-channel", []))
    if not channels:
        raise GripError("Grip-Hold without any Grip-Channel")
    timeouts = grip.get("grip-timeout")
    keep_alives = grip.get("grip-keep-alive")
    set_meta = grip.get("grip-set-meta")
    exposing = grip.get("grip-expose-headers")
    exposed = frozenset(n.strip().lower() for v in exposing for n in v.split(",")) - {""} if exposing else frozenset()
    hold = Hold(
        HoldMode(mode_name),
        channels,
        parse_timeout(timeouts[0] if timeouts else None),
        parse_keep_alive(keep_alives[0]) if keep_alives else None,
        parse_set_meta(set_meta) if set_meta else (),
        exposed,
    )
    return Instruction(hold, relayed, link, unknown)


def instruction_from_body(body: bytes, headers: Headers = ()) -> Instruction:
    """Parse an ``application/grip-instruct`` JSON body (``hold`` and ``response`` objects).

    A ``Grip-Link`` header of the same response still names the next link, as Pushpin reads it.
    """
    try:
        doc = json.loads(body)
    except ValueError as error:
        raise GripError(f"grip-instruct body is not JSON ({error})") from None
    if not isinstance(doc, dict):
        raise GripError("grip-instruct body must be a JSON object")
    response = _instruct_response(doc.get("response", {}))
    link = parse_next_link(header_values(headers, "Grip-Link"))
    raw_hold = doc.get("hold")
    if raw_hold is None:
        return Instruction(None, response, link)
    return Instruction(_instruct_hold(raw_hold), response, link)


def _instruct_hold(raw: Any) -> Hold:
    if not isinstance(raw, dict):
        raise GripError("grip-instruct hold must be an object")
    mode = raw.get("mode", "response")
    if mode not in (HoldMode.RESPONSE, HoldMode.STREAM):
        raise GripError(f"grip-instruct hold.mode must be response or stream, got {mode!r}")
    raw_channels = raw.get("channels")
    if not isinstance(raw_channels, list) or not raw_channels:
        raise GripError("grip-instruct hold.channels must be a non-empty list")
    channels = tuple(_instruct_channel(c) for c in raw_channels)
    timeout = raw.get("timeout", DEFAULT_TIMEOUT_S)
    if type(timeout) is not int or not 0 < timeout <= MAX_TIMEOUT_S:
        raise GripError(f"grip-instruct hold.timeout must be 1-{MAX_TIMEOUT_S} seconds")
    return Hold(HoldMode(mode), channels, timeout, _instruct_keep_alive(raw.get("keep-alive")))


def _instruct_channel(raw: Any) -> Channel:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise GripError("grip-instruct channel must be an object with a non-empty name")
    prev_id = raw.get("prev-id")
    filters = raw.get("filters", [])
    if not isinstance(filters, list) or not all(isinstance(f, str) for f in filters):
        raise GripError("grip-instruct channel filters must be a list of strings")
    return Channel(raw["name"], prev_id if isinstance(prev_id, str) else None, tuple(filters))


def _instruct_keep_alive(raw: Any) -> KeepAlive | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise GripError("grip-instruct hold.keep-alive must be an object")
    timeout = raw.get("timeout", DEFAULT_KEEP_ALIVE_S)
    if type(timeout) is not int or not 0 < timeout <= MAX_TIMEOUT_S:
        raise GripError("grip-instruct keep-alive timeout must be a positive integer")
    return KeepAlive(text_or_bin(raw, "content"), timeout)


def _instruct_response(raw: Any) -> OriginResponse:
    if not isinstance(raw, dict):
        raise GripError("grip-instruct response must be an object")
    code = raw.get("code", 200)
    if type(code) is not int or not 100 <= code <= 599:
        raise GripError("grip-instruct response.code must be an HTTP status")
    headers = raw.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise GripError("grip-instruct response.headers must map names to strings")
    reason = str(raw["reason"]) if isinstance(raw.get("reason"), str) else ""
    return OriginResponse(code, reason, strip_grip_headers(tuple(headers.items())), text_or_bin(raw, "body"))


def text_or_bin(raw: dict[str, Any], name: str) -> bytes:
    """Read ``name`` (text) or ``name-bin`` (base64) from a GRIP object; absent is empty."""
    if isinstance(raw.get(name), str):
        return str(raw[name]).encode()
    binary = raw.get(f"{name}-bin")
    if binary is None:
        return b""
    if not isinstance(binary, str):
        raise GripError(f"{name}-bin must be a base64 string")
    try:
        return base64.b64decode(binary, validate=True)
    except ValueError:
        raise GripError(f"{name}-bin is not valid base64") from None
