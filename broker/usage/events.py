"""CloudEvents the broker writes to its outbox (DESIGN.md "Event contract").

Pure builders: the caller passes the node, the instant and a fresh id, so the same
inputs always give the same event and tests need no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SPEC_VERSION = "1.0"


@dataclass(frozen=True, slots=True)
class Subject:
    """Who an event is about: the account and service every event carries."""

    account_id: str
    service_id: str


def source_for(node: str) -> str:
    """The CloudEvents source naming a broker node: ``broker/<node>``."""
    return f"broker/{node}"


def rfc3339(at: datetime) -> str:
    """An aware instant as RFC 3339 in UTC with microseconds.

    >>> rfc3339(datetime(2026, 11, 28, 4, 5, 6, 7, tzinfo=UTC))
    '2026-11-28T04:05:06.000007Z'
    """
    if at.tzinfo is None:
        raise ValueError("event time must be timezone-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def cloud_event(
    kind: str, node: str, event_id: str, at: datetime, who: Subject, data: dict[str, Any]
) -> dict[str, Any]:
    """One structured-mode CloudEvent of type ``fanout.<kind>``."""
    return {
        "specversion": SPEC_VERSION,
        "type": f"fanout.{kind}",
        "source": source_for(node),
        "id": event_id,
        "time": rfc3339(at),
        "subject": who.service_id,
        "datacontenttype": "application/json",
        "data": {"account_id": who.account_id, "service_id": who.service_id, **data},
    }


def connection_open(
    node: str, event_id: str, at: datetime, who: Subject, connection_id: str, transport: str
) -> dict[str, Any]:
    return cloud_event(
        "connection.open", node, event_id, at, who, {"connection_id": connection_id, "transport": transport}
    )


def connection_report(
    node: str,
    event_id: str,
    at: datetime,
    who: Subject,
    connection_id: str,
    counters: tuple[int, int],
    reason: str | None = None,
) -> dict[str, Any]:
    """An ``alive`` (reason None) or ``close`` event with cumulative (bytes_out, bytes_in)."""
    data: dict[str, Any] = {"connection_id": connection_id, "bytes_out": counters[0], "bytes_in": counters[1]}
    if reason is None:
        return cloud_event("connection.alive", node, event_id, at, who, data)
    return cloud_event("connection.close", node, event_id, at, who, {**data, "reason": reason})


def message_event(
    kind: str, node: str, event_id: str, at: datetime, who: Subject, channel: str, count: int, size: int
) -> dict[str, Any]:
    """A ``message.published`` or ``message.delivered`` event (``kind`` is ``published``/``delivered``)."""
    return cloud_event(f"message.{kind}", node, event_id, at, who, {"channel": channel, "count": count, "bytes": size})
