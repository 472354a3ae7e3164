"""Pushpin's stats records, parsed from the frames of its PUB socket (``stats_spec``).

Pushpin (``src/corelib/statsmanager.cpp``, ``packet/statspacket.cpp``) sends one single-part
message per record: the record type, a space, a format marker (``J`` for ``stats_format=json``,
``T`` for tnetstring) and the encoded object, e.g.::

    conn J{"from":"pushpin-handler_30527","id":"condure:0-0-1","route":"ra","ttl":120,"type":"http"}
    conn J{"from":"pushpin-handler_30527","id":"condure:0-0-1","unavailable":true}
    message J{"channel":"news","count":2,"from":"pushpin-handler_30527","item-id":"i1","transport":"http-stream"}
    report J{"connections":2,"duration":10000,"from":"pushpin-handler_30527","minutes":2,"received":1,...}

Only ``conn``, ``message`` and ``report`` matter for billing; ``activity``, ``counts`` and
``sub`` are ignored. A record that breaks Pushpin's own schema raises ``BadRecord``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

BILLED_TYPES = ("conn", "message", "report")


class BadRecord(ValueError):
    """A frame that is not a valid Pushpin stats record; the message says why."""


@dataclass(frozen=True, slots=True)
class ConnRecord:
    """A connection seen (on connect and at every refresh, with ``ttl``) or gone (``unavailable``)."""

    origin: str  # Pushpin's "from": the instance id, e.g. pushpin-handler_<pid>
    conn_id: str
    route: str | None  # the route's explicit id (routes file ``id=``); absent on the global route
    unavailable: bool
    kind: str | None = None  # "http" or "ws" (connected records only)
    ttl_s: int | None = None


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One published item relayed to ``count`` subscribers of one transport."""

    origin: str
    channel: str
    item_id: str | None
    count: int
    transport: str


@dataclass(frozen=True, slots=True)
class ReportRecord:
    """Per-route counters since the previous report; ``received`` counts published items (global route)."""

    origin: str
    route: str | None
    received: int | None
    minutes: int | None
    connections: int | None


Record = ConnRecord | MessageRecord | ReportRecord


def parse_frame(frame: bytes) -> Record | None:
    """The record in one frame, or None for a record type billing ignores.

    >>> parse_frame(b'conn J{"from":"h_1","id":"c:1","unavailable":true}')
    ConnRecord(origin='h_1', conn_id='c:1', route=None, unavailable=True, kind=None, ttl_s=None)
    """
    kind, sep, rest = frame.partition(b" ")
    if not sep or not rest:
        raise BadRecord("frame is not '<type> <format><body>'")
    record_type = kind.decode("ascii", errors="replace")
    if record_type not in BILLED_TYPES:
        return None
    if rest[:1] != b"J":
        raise BadRecord(f"{record_type} record is not JSON (set stats_format=json in pushpin.conf)")
    try:
        obj = json.loads(rest[1:])
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRecord(f"{record_type} record is not valid JSON: {error}") from None
    if not isinstance(obj, dict):
        raise BadRecord(f"{record_type} record is not a JSON object")
    if record_type == "conn":
        return _conn(obj)
    if record_type == "message":
        return _message(obj)
    return _report(obj)


def _conn(obj: dict[str, Any]) -> ConnRecord:
    origin, conn_id, route = _text(obj, "from"), _text(obj, "id"), _optional_text(obj, "route")
    unavailable = obj.get("unavailable", False)
    if not isinstance(unavailable, bool):
        raise BadRecord("conn 'unavailable' must be a boolean")
    if unavailable:
        return ConnRecord(origin, conn_id, route, unavailable=True)
    kind = _text(obj, "type")
    if kind not in ("http", "ws"):
        raise BadRecord(f"conn 'type' must be 'http' or 'ws', got {kind!r}")
    return ConnRecord(origin, conn_id, route, unavailable=False, kind=kind, ttl_s=_count(obj, "ttl"))


def _message(obj: dict[str, Any]) -> MessageRecord:
    return MessageRecord(
        _text(obj, "from"), _text(obj, "channel"), _optional_text(obj, "item-id"), _count(obj, "count"),
        _text(obj, "transport"),
    )  # fmt: skip


def _report(obj: dict[str, Any]) -> ReportRecord:
    optional = {name: _count(obj, name) if name in obj else None for name in ("received", "minutes", "connections")}
    return ReportRecord(_text(obj, "from"), _optional_text(obj, "route"), **optional)


def _text(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise BadRecord(f"'{name}' must be a non-empty string")
    return value


def _optional_text(obj: dict[str, Any], name: str) -> str | None:
    return _text(obj, name) if name in obj else None


def _count(obj: dict[str, Any], name: str) -> int:
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRecord(f"'{name}' must be a non-negative integer, got {value!r}")
    return value
