"""The webhook outbox: an event is written in the transaction of the change it reports.

``record_event`` inserts the event and one pending delivery per endpoint that wants it, on the
caller's connection and inside the caller's transaction: if the change rolls back, so does the
event, and if it commits, the delivery task will send it (at least once). Nothing here talks to
the network.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import Connection, insert, select

from billing.webhooks.events import EVENT_TYPES
from billing.webhooks.orm import WebhookDelivery, WebhookEndpoint, WebhookEvent

EVENT_ID_PREFIX = "msg_"
PENDING = "pending"


def new_event_id() -> str:
    """A unique ``webhook-id`` such as ``msg_5f0c2a9b7d1e4c3a8b6f0e2d``: receivers dedupe on it."""
    return f"{EVENT_ID_PREFIX}{secrets.token_hex(12)}"


class NewEvent(NamedTuple):
    """One event to record: its type, its account (None: platform-wide) and its data."""

    event_type: str
    account_id: str | None
    data: Mapping[str, object]


def record_event(
    conn: Connection,
    event_type: str,
    account_id: str | None,
    data: Mapping[str, object],
    *,
    now: datetime | None = None,
) -> str:
    """Write one event to the outbox in the caller's transaction and return its id.

    ``account_id`` None is a platform-wide event: only platform-wide endpoints receive it; an
    account's event goes to that account's endpoints and to the platform-wide ones. Decimals are
    written as their exact text and instants as RFC 3339, so no float ever carries money.
    """
    return record_events(conn, [NewEvent(event_type, account_id, data)], now=now)[0]


def record_events(conn: Connection, events: Sequence[NewEvent], *, now: datetime | None = None) -> list[str]:
    """Write several events in the caller's transaction (one endpoint query for all); their ids in order.

    The drafts of a month for every account are one run: one query of the endpoints instead of
    one per account.
    """
    for event in events:
        if event.event_type not in EVENT_TYPES:
            raise ValueError(f"unknown webhook event type {event.event_type!r}")
    if not events:
        return []
    at = now or datetime.now(UTC)
    ids = [new_event_id() for _ in events]
    rows = [
        {"id": event_id, "type": e.event_type, "account_id": e.account_id, "data": _json_ready(e.data)}
        for event_id, e in zip(ids, events, strict=True)
    ]
    seqs = conn.execute(
        insert(WebhookEvent).values(created_at=at).returning(WebhookEvent.seq, sort_by_parameter_order=True), rows
    ).scalars()
    endpoints = _enabled_endpoints(conn)
    deliveries = [
        {
            "endpoint_id": endpoint.id,
            "event_seq": seq,
            "status": PENDING,
            "attempts": 0,
            "failures": 0,
            "next_attempt_at": at,
        }
        for event, seq in zip(events, seqs, strict=True)
        for endpoint in endpoints
        if endpoint.wants(event.event_type, event.account_id)
    ]
    if deliveries:
        conn.execute(insert(WebhookDelivery), deliveries)
    return ids


class _Audience(NamedTuple):
    id: str
    account_id: str | None
    event_types: list[str]

    def wants(self, event_type: str, account_id: str | None) -> bool:
        """A platform-wide endpoint sees every account; an account's endpoint only its own events."""
        return event_type in self.event_types and (self.account_id is None or self.account_id == account_id)


def _enabled_endpoints(conn: Connection) -> list[_Audience]:
    """The enabled endpoints, oldest first (few: matching their JSON lists here suits both dialects)."""
    rows = conn.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.account_id, WebhookEndpoint.event_types)
        .where(WebhookEndpoint.disabled_at.is_(None))
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    )
    return [_Audience(*row) for row in rows]


def _json_ready(data: Mapping[str, object]) -> dict[str, Any]:
    """``data`` as plain JSON values (a value JSON cannot hold raises TypeError here, not later)."""
    result: dict[str, Any] = json.loads(json.dumps(dict(data), default=_encode))
    return result


def _encode(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TypeError("webhook data instants must carry a time zone")
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    raise TypeError(f"webhook data cannot hold {type(value).__name__}")
