"""The append-only audit log: every change of money or entitlement, who made it, before and after."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.orm import AuditEntry


def record(
    session: Session,
    *,
    actor: str,
    account_id: str | None,
    action: str,
    target: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    now: datetime,
) -> None:
    """Add one audit entry to the caller's transaction (it commits with the change it describes)."""
    session.add(
        AuditEntry(at=now, actor=actor, account_id=account_id, action=action, target=target, before=before, after=after)
    )


def entries(session: Session, account_id: str | None, limit: int = 500) -> list[AuditEntry]:
    """Return the newest entries first: one account's, or every entry when ``account_id`` is None."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if account_id is not None:
        query = query.where(AuditEntry.account_id == account_id)
    return list(session.scalars(query))
