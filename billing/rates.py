"""Rate cards: the default card and contract overrides, versioned by effective month, every change audited.

A change is a new ``rate_card_version`` row, never an update, so each month keeps the prices
it was billed at. Which version prices a month: ``billing.domain.rate_card_json.card_in_force``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import audit
from billing import statement_store as store
from billing.domain.exceptions import Conflict, NotFound
from billing.domain.rate_card_json import CardVersion, card_from_json, card_to_json, version_in_force
from billing.domain.rate_cards import DEFAULT_RATE_CARD
from billing.domain.roles import Principal
from billing.orm import Account, RateCardVersion, StatementRecord
from kernel.instants import Month


@dataclass(frozen=True)
class CardInForce:
    """The card pricing a month, and where it comes from."""

    account_id: str | None
    month: Month
    source: str  # "override" | "default" | "built-in"
    version_id: int | None
    effective_month: str | None
    card: dict[str, Any]


def card_for(session: Session, account_id: str | None, month: Month) -> CardInForce:
    """Return the card in force for an account's month (``account_id`` None: the default card)."""
    if account_id is not None and session.get(Account, account_id) is None:
        raise NotFound(f"no account {account_id!r}")
    only = [] if account_id is None else [account_id]
    version = version_in_force(store.card_versions(session.connection(), only), account_id, month)
    return _in_force(account_id, month, version)


def _in_force(account_id: str | None, month: Month, version: CardVersion | None) -> CardInForce:
    if version is None:
        return CardInForce(account_id, month, "built-in", None, None, card_to_json(DEFAULT_RATE_CARD))
    source = "default" if version.account_id is None else "override"
    return CardInForce(
        account_id, month, source, version.version_id, str(version.effective_month), card_to_json(version.card)
    )


def set_card(
    session: Session,
    principal: Principal,
    account_id: str | None,
    card: dict[str, Any],
    effective_month: Month,
    now: datetime,
) -> CardInForce:
    """Add a version of the default card (``account_id`` None) or of an account's override, audited.

    Refused (409) when a statement it would reprice is already finalized: those never change.
    """
    before = card_for(session, account_id, effective_month)
    canonical = card_to_json(card_from_json(card))
    finalized = select(StatementRecord.account_id, StatementRecord.month).where(
        StatementRecord.status == "finalized", StatementRecord.month >= str(effective_month)
    )
    if account_id is not None:
        finalized = finalized.where(StatementRecord.account_id == account_id)
    clash = session.execute(finalized.limit(1)).first()
    if clash is not None:
        raise Conflict(
            f"the statement of {clash[0]} for {clash[1]} is finalized; a rate change can take effect "
            f"from {Month.parse(clash[1]).next()} at the earliest"
        )
    row = RateCardVersion(
        account_id=account_id,
        effective_month=str(effective_month),
        card=canonical,
        created_at=now,
        created_by=principal.actor,
    )
    session.add(row)
    session.flush()
    after = _in_force(
        account_id, effective_month, CardVersion(row.id, account_id, effective_month, card_from_json(canonical))
    )
    audit.record(
        session,
        actor=principal.actor,
        account_id=account_id,
        action="rate_card.set",
        target=f"rate_card/{account_id or 'default'}/{effective_month}",
        before=_audit_json(before),
        after=_audit_json(after),
        now=now,
    )
    session.commit()
    return after


def _audit_json(card: CardInForce) -> dict[str, Any]:
    return {
        "source": card.source,
        "version_id": card.version_id,
        "effective_month": card.effective_month,
        "card": card.card,
    }
