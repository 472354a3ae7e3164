"""The webhook outbox: an event is written in the transaction of the change it reports.

``record_event`` inserts the event and one pending delivery per endpoint that wants it, on the
caller's connection and inside the caller's transaction: if the change rolls back, so does the
event, and if it commits, the delivery task will send it (at least once). Nothing here talks to
the network.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, insert, or_, select

from billing.webhooks.events import EVENT_TYPES
from billing.webhooks.orm import WebhookDelivery, WebhookEndpoint, WebhookEvent

EVENT_ID_PREFIX = "msg_"
PENDING = "pending"


def new_event_id() -> str:
    """A unique ``webhook-id`` such as ``msg_5f0c2a9b7d1e4c3a8b6f0e2d``: receivers dedupe on it."""
    return f"{EVENT_ID_PREFIX}{secrets.token_hex(12)}"


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
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    at = now or datetime.now(UTC)
    event_id = new_event_id()
    body = _json_ready(data)
    seq = conn.execute(
        insert(WebhookEvent)
        .values(id=event_id, type=event_type, account_id=account_id, data=body, created_at=at)
        .returning(WebhookEvent.seq)
    ).scalar_one()
    endpoint_ids = _endpoints_wanting(conn, event_type, account_id)
    if endpoint_ids:
        conn.execute(
            insert(WebhookDelivery),
            [
                {"endpoint_id": endpoint_id, "event_seq": seq, "status": PENDING, "attempts": 0, "next_attempt_at": at}
                for endpoint_id in endpoint_ids
            ],
        )
    return event_id


def _endpoints_wanting(conn: Connection, event_type: str, account_id: str | None) -> list[str]:
    """The enabled endpoints subscribed to ``event_type`` that may see ``account_id``'s events."""
    audience = WebhookEndpoint.account_id.is_(None)
    if account_id is not None:
        audience = or_(audience, WebhookEndpoint.account_id == account_id)
    rows = conn.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.event_types)
        .where(audience, WebhookEndpoint.disabled_at.is_(None))
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    )
    # Endpoints are few; matching the JSON list here keeps one query for SQLite and PostgreSQL.
    return [endpoint_id for endpoint_id, wanted in rows if event_type in wanted]


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
