"""Account products: a superuser purchases or cancels Compute and Fanout for the account.

Cancelling Fanout turns it off on every service of the account that had it on, each change
audited, so nothing keeps running (and billing) on a product the account no longer has
(docs/decisions.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing import audit
from billing.accounts import get_account, products_of
from billing.domain import fanout_rules
from billing.domain.exceptions import NotFound, PermissionDenied, RuleViolation
from billing.domain.roles import Action, Principal, Verdict, decide
from billing.orm import AccountProduct, Service
from billing.webhooks import events as webhook_events
from billing.webhooks import outbox, payloads

CANCELLED = "Fanout cancelled for the account"


def require_purchaser(principal: Principal, account_id: str) -> None:
    """Raise unless ``principal`` is the account's superuser (404 for another account, as everywhere)."""
    verdict = decide(principal, Action.PURCHASE_PRODUCTS, account_id)
    if verdict is Verdict.HIDE:
        raise NotFound("not found")
    if verdict is Verdict.DENY:
        reason = fanout_rules.not_superuser_reason(principal.role or principal.kind)
        raise PermissionDenied(reason or "not allowed")


def product_row(session: Session, account_id: str, product: str) -> AccountProduct | None:
    """The purchase of ``product`` by the account, or None."""
    return session.get(AccountProduct, (account_id, product))


def product_json(account_id: str, product: str, row: AccountProduct | None) -> dict[str, Any]:
    """A product of an account as the API and the audit log show it."""
    return {
        "product": {"id": product, "object": "product"},
        "account": {"id": account_id, "object": "account"},
        "enabled": row is not None,
        "enabled_at": None if row is None else row.enabled_at.isoformat(),
    }


def purchase(session: Session, principal: Principal, account_id: str, product: str, now: datetime) -> AccountProduct:
    """Purchase a product for the account; purchasing one already held changes nothing."""
    account = get_account(session, account_id)
    existing = product_row(session, account_id, product)
    if existing is not None:
        return existing
    reason = fanout_rules.purchase_refusal(product, account.plan, set(products_of(session, account_id)))
    if reason:
        raise RuleViolation(reason)
    row = AccountProduct(account_id=account_id, product=product, enabled_at=now)
    session.add(row)
    audit.record(
        session,
        actor=principal.actor,
        account_id=account_id,
        action="product.purchase",
        target=f"account/{account_id}/products/{product}",
        before=product_json(account_id, product, None),
        after=product_json(account_id, product, row),
        now=now,
    )
    if product == fanout_rules.FANOUT:
        _notify(session, webhook_events.FANOUT_ENABLED, account_id, None, now)
    try:
        session.commit()
    except IntegrityError:  # a concurrent purchase of the same product won: the outcome is the same
        session.rollback()
        winner = product_row(session, account_id, product)
        if winner is None:
            raise
        return winner
    return row


def cancel(session: Session, principal: Principal, account_id: str, product: str, now: datetime) -> None:
    """Cancel a product; cancelling Fanout also turns it off on every service (each audited)."""
    get_account(session, account_id)
    row = product_row(session, account_id, product)
    if row is None:
        return
    reason = fanout_rules.cancel_refusal(product, set(products_of(session, account_id)))
    if reason:
        raise RuleViolation(reason)
    if product == fanout_rules.FANOUT:
        _turn_fanout_off_everywhere(session, principal, account_id, now)
    audit.record(
        session,
        actor=principal.actor,
        account_id=account_id,
        action="product.cancel",
        target=f"account/{account_id}/products/{product}",
        before=product_json(account_id, product, row),
        after=product_json(account_id, product, None),
        now=now,
    )
    if product == fanout_rules.FANOUT:
        _notify(session, webhook_events.FANOUT_DISABLED, account_id, None, now)
    session.delete(row)
    session.commit()


def _turn_fanout_off_everywhere(session: Session, principal: Principal, account_id: str, now: datetime) -> None:
    query = select(Service).where(Service.account_id == account_id, Service.fanout_enabled.is_(True))
    for service in session.scalars(query):
        service.fanout_enabled = False
        audit.record(
            session,
            actor=principal.actor,
            account_id=account_id,
            action="fanout.disable",
            target=f"service/{service.id}",
            before={"fanout_enabled": True},
            after={"fanout_enabled": False, "reason": CANCELLED},
            now=now,
        )
        _notify(session, webhook_events.FANOUT_DISABLED, account_id, service.id, now, CANCELLED)


def _notify(
    session: Session, event_type: str, account_id: str, service_id: str | None, now: datetime, reason: str | None = None
) -> None:
    """Write Fanout's webhook event in the transaction that turned it on or off."""
    data = payloads.fanout_data(account_id, service_id, reason)
    outbox.record_event(session.connection(), event_type, account_id, data, now=now)
