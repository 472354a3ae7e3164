"""What each webhook event's ``data`` holds: the facts a receiving system acts on, never a whole body.

A receiver that wants the whole statement or credit note fetches it from the admin API with
the ids given here; the event says what changed and carries the figures to reconcile against.
"""

from __future__ import annotations

from typing import Any

STATEMENT_KEYS = ("account_id", "month", "status", "currency", "subtotal", "total", "number", "content_hash")
CREDIT_NOTE_KEYS = ("number", "account_id", "month", "statement_number", "currency", "total", "reason", "content_hash")


def statement_data(body: dict[str, Any], *, regenerated: bool = False) -> dict[str, Any]:
    """A statement's event data: its account, month, status, totals, number and hash.

    ``regenerated`` tells a new draft (False) from a draft rebuilt with a different body (True).
    """
    data = {key: body.get(key) for key in STATEMENT_KEYS}
    if body.get("status") == "draft":
        data["regenerated"] = regenerated
    return data


def credit_note_data(body: dict[str, Any]) -> dict[str, Any]:
    """A credit note's event data: its number, the statement it credits, its total and reason."""
    return {key: body.get(key) for key in CREDIT_NOTE_KEYS}


def fanout_data(account_id: str, service_id: str | None, reason: str | None = None) -> dict[str, Any]:
    """Fanout turned on or off: for the account (``service_id`` None, the product) or one service."""
    return {
        "account_id": account_id,
        "scope": "account" if service_id is None else "service",
        "service_id": service_id,
        "reason": reason,
    }
