"""An account's usage alert thresholds: set, list and remove them, and read their crossings.

Setting and removing is ``Action.MANAGE_ALERTS`` (admin for any account, a superuser for their
own), audited like every change an account's people make. Reading follows the usage page: who
may read the account's usage sees its thresholds and crossings, but money ones (month-to-date
and projected amounts) only with the right to read statements too, so an engineer sees no money.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from billing import audit
from billing.access import new_id, require
from billing.accounts import require_account_on
from billing.alerts.orm import AlertCheck, ThresholdCrossing, UsageThreshold
from billing.domain.alerts import Measure, format_value, parse_limit
from billing.domain.exceptions import NotFound, RuleViolation
from billing.domain.roles import Action, Principal, Verdict, decide
from kernel.instants import Month

# A bound on what one account asks the checker to watch; far more than anyone needs.
MAX_THRESHOLDS_PER_ACCOUNT = 25
MEASURE_LABELS = {
    Measure.AMOUNT: "Month-to-date amount",
    Measure.PROJECTED_AMOUNT: "Projected month-end amount",
    Measure.CONNECTION_MINUTES: "Connection minutes",
    Measure.MESSAGES: "Messages",
    Measure.GIGABYTES: "Bandwidth (GB)",
}


@dataclass(frozen=True)
class ThresholdView:
    """A threshold as the API, the CLI and the console show it."""

    id: str
    account_id: str
    measure: Measure
    limit: Decimal
    name: str
    created_at: datetime
    created_by: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account_id": self.account_id,
            "measure": self.measure.value,
            "limit": format_value(self.measure, self.limit),
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class CrossingView:
    """A crossing as the API and the usage page's banner show it."""

    threshold_id: str
    name: str
    month: Month
    measure: Measure
    limit: Decimal
    value: Decimal
    currency: str | None
    crossed_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "threshold_id": self.threshold_id,
            "name": self.name,
            "month": str(self.month),
            "measure": self.measure.value,
            "limit": format_value(self.measure, self.limit),
            "value": format_value(self.measure, self.value),
            "currency": self.currency,
            "crossed_at": self.crossed_at.isoformat(),
        }

    @property
    def sentence(self) -> str:
        """The banner's words, e.g. "Month-to-date amount reached 120.00 USD (threshold "Budget", 100.00 USD)"."""
        unit = f" {self.currency}" if self.currency else ""
        label = MEASURE_LABELS[self.measure]
        limit, value = format_value(self.measure, self.limit), format_value(self.measure, self.value)
        return f'{label} reached {value}{unit} (threshold "{self.name}", {limit}{unit})'


def _view(row: UsageThreshold) -> ThresholdView:
    measure = Measure(row.measure)
    return ThresholdView(row.id, row.account_id, measure, row.limit_value, row.name, row.created_at, row.created_by)


def _sees_money(principal: Principal, account_id: str) -> bool:
    return decide(principal, Action.READ_STATEMENTS, account_id) is Verdict.ALLOW


def _measure(text: str) -> Measure:
    try:
        return Measure(text)
    except ValueError:
        names = ", ".join(m.value for m in Measure)
        raise RuleViolation(f"measure must be one of {names}, got {text!r}") from None


def _active(session: Session, account_id: str) -> list[UsageThreshold]:
    query = select(UsageThreshold).where(UsageThreshold.account_id == account_id, UsageThreshold.removed_at.is_(None))
    return list(session.scalars(query.order_by(UsageThreshold.created_at, UsageThreshold.id)))


def set_threshold(
    session: Session, principal: Principal, account_id: str, measure: str, limit: str, name: str, now: datetime
) -> ThresholdView:
    """Add a threshold to the account, audited; it is checked from the next checker pass on."""
    require(principal, Action.MANAGE_ALERTS, account_id)
    require_account_on(session.connection(), account_id)
    chosen = _measure(measure)
    value = parse_limit(chosen, limit)
    name = name.strip() or f"{MEASURE_LABELS[chosen]} {format_value(chosen, value)}"
    if len(_active(session, account_id)) >= MAX_THRESHOLDS_PER_ACCOUNT:
        raise RuleViolation(f"an account has at most {MAX_THRESHOLDS_PER_ACCOUNT} thresholds; remove one first")
    row = UsageThreshold(
        id=new_id("thr"),
        account_id=account_id,
        measure=chosen.value,
        limit_value=value,
        name=name[:200],
        created_at=now,
        created_by=principal.actor,
    )
    session.add(row)
    # The checker skips accounts whose usage did not change: forget what it saw, so the new
    # threshold is compared with the usage already there at the next pass.
    session.execute(delete(AlertCheck).where(AlertCheck.account_id == account_id))
    view = _view(row)
    audit.record(
        session,
        actor=principal.actor,
        account_id=account_id,
        action="alert.threshold_set",
        target=f"threshold {row.id}",
        before=None,
        after=view.to_json(),
        now=now,
    )
    session.commit()
    return view


def remove_threshold(session: Session, principal: Principal, account_id: str, threshold_id: str, now: datetime) -> None:
    """Remove a threshold (kept, marked removed, with its crossings), audited."""
    require(principal, Action.MANAGE_ALERTS, account_id)
    row = session.get(UsageThreshold, threshold_id)
    if row is None or row.account_id != account_id or row.removed_at is not None:
        raise NotFound(f"no threshold {threshold_id!r}")
    before = _view(row).to_json()
    row.removed_at = now
    audit.record(
        session,
        actor=principal.actor,
        account_id=account_id,
        action="alert.threshold_removed",
        target=f"threshold {row.id}",
        before=before,
        after=None,
        now=now,
    )
    session.commit()


def list_thresholds(session: Session, principal: Principal, account_id: str) -> list[ThresholdView]:
    """The account's thresholds, oldest first (money ones only for those who may read statements)."""
    require(principal, Action.READ_USAGE, account_id)
    require_account_on(session.connection(), account_id)
    money = _sees_money(principal, account_id)
    return [view for view in map(_view, _active(session, account_id)) if money or not view.measure.is_money]


def crossings_of(session: Session, principal: Principal, account_id: str, month: Month) -> list[CrossingView]:
    """The account's crossings of ``month``, in the order they happened (money ones as ``list_thresholds``)."""
    require(principal, Action.READ_USAGE, account_id)
    require_account_on(session.connection(), account_id)
    money = _sees_money(principal, account_id)
    rows = session.execute(
        select(ThresholdCrossing, UsageThreshold.name)
        .join(UsageThreshold, UsageThreshold.id == ThresholdCrossing.threshold_id)
        .where(ThresholdCrossing.account_id == account_id, ThresholdCrossing.month == str(month))
        .order_by(ThresholdCrossing.crossed_at, ThresholdCrossing.id)
    )
    views = [
        CrossingView(c.threshold_id, name, month, Measure(c.measure), c.limit_value, c.value, c.currency, c.crossed_at)
        for c, name in rows
    ]
    return [view for view in views if money or not view.measure.is_money]
