"""The threshold checker: finds crossings and fires each once per (threshold, month).

A pass (the beat task ``billing.tasks.check_usage_alerts``, or ``fanmeter alerts check``):

1. reads, without a write lock, every account's usage of the months to check through metering's
   service (one grouped query) and the usage each account's month was last checked at;
2. keeps only the accounts whose usage changed, and of those the ones with thresholds: an
   account that used nothing new costs nothing more, however many thresholds it has;
3. drops the thresholds that already fired this month, prices the months of the accounts left
   with a money threshold with the statements' own code (``billing.statements.load_inputs``), and
   asks ``billing.domain.alerts.crossings`` what was crossed;
4. in one short transaction, per crossing: inserts its ``threshold_crossing`` row (``ON CONFLICT
   DO NOTHING`` on the unique (threshold, month)) and only when that row is new, the webhook event
   and the audit entry; then records the usage it checked.

So a redelivered task, a second checker running at once, or a rollup rerun that gives the same
or other usage never fires a threshold twice in a month: the database refuses the second row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.orm import Session

from billing import audit, statements
from billing.alerts.orm import AlertCheck, ThresholdCrossing, UsageThreshold
from billing.domain.alerts import (
    Crossing,
    Measure,
    MonthValues,
    Threshold,
    crossings,
    format_value,
    months_to_check,
    project,
    usage_fingerprint,
)
from billing.webhooks.events import USAGE_THRESHOLD_CROSSED
from billing.webhooks.outbox import record_event
from kernel.db import read_only
from kernel.instants import Month, to_micros
from metering import service as metering_service
from metering.domain.usage import UsageReport

SYSTEM = "system"  # the audit actor of a crossing
CHUNK = 500  # ids per IN list: far below every driver's parameter limit

_CLAIM = text(
    "INSERT INTO threshold_crossing (threshold_id, account_id, month, measure, limit_value, value, currency, "
    "crossed_at) VALUES (:threshold_id, :account_id, :month, :measure, :limit_value, :value, :currency, :crossed_at) "
    "ON CONFLICT (threshold_id, month) DO NOTHING"
)
_REMEMBER = text(
    "INSERT INTO alert_check (account_id, month, connection_minutes, messages, bytes_out, checked_at) "
    "VALUES (:account_id, :month, :connection_minutes, :messages, :bytes_out, :checked_at) "
    "ON CONFLICT (account_id, month) DO UPDATE SET connection_minutes = excluded.connection_minutes, "
    "messages = excluded.messages, bytes_out = excluded.bytes_out, checked_at = excluded.checked_at"
)


@dataclass(frozen=True)
class CheckRun:
    """What a pass did: accounts whose usage changed, of those checked ones (with thresholds), crossings fired."""

    months: tuple[Month, ...]
    changed: int
    checked: int
    fired: int


@dataclass(frozen=True)
class _Seen:
    account_id: str
    month: Month
    report: UsageReport


def check(engine: Engine, now: datetime, grace_hours: int) -> CheckRun:
    """Check the thresholds of every account whose usage changed since the last pass; fire new crossings."""
    months = months_to_check(to_micros(now), grace_hours)
    with read_only(engine).connect() as conn:
        changed = _changed_usage(conn, months)
        thresholds = _thresholds_of(conn, {seen.account_id for seen in changed}) if changed else {}
        found = [crossing for month in months for crossing in _crossings_in(conn, month, changed, thresholds, now)]
    with engine.begin() as conn:
        fired = sum(_fire(conn, crossing, currency, now) for crossing, currency in found)
        _remember(conn, changed, now)
    checked = sum(1 for seen in changed if seen.account_id in thresholds)
    return CheckRun(tuple(months), len(changed), checked, fired)


def _changed_usage(conn: Connection, months: Sequence[Month]) -> list[_Seen]:
    """The (account, month) usage reports that differ from what the last pass recorded."""
    reports = metering_service.usage_reports(conn, months)
    rows = conn.execute(
        select(AlertCheck.account_id, AlertCheck.month, AlertCheck.connection_minutes, AlertCheck.messages,
               AlertCheck.bytes_out).where(AlertCheck.month.in_([str(m) for m in months]))
    )  # fmt: skip
    last = {(account, month): (minutes, messages, bytes_out) for account, month, minutes, messages, bytes_out in rows}
    return [
        _Seen(account, month, report)
        for (account, month), report in reports.items()
        if last.get((account, str(month))) != usage_fingerprint(report)
    ]


def _chunks(values: Iterable[str]) -> Iterable[list[str]]:
    iterator = iter(sorted(values))
    while chunk := list(islice(iterator, CHUNK)):
        yield chunk


def _thresholds_of(conn: Connection, accounts: Collection[str]) -> dict[str, list[Threshold]]:
    """The active thresholds of ``accounts``, per account."""
    found: dict[str, list[Threshold]] = defaultdict(list)
    table = UsageThreshold
    for chunk in _chunks(accounts):
        rows = conn.execute(
            select(table.id, table.account_id, table.measure, table.limit_value, table.name).where(
                table.account_id.in_(chunk), table.removed_at.is_(None)
            )
        )
        for threshold_id, account_id, measure, limit, name in rows:
            found[account_id].append(Threshold(threshold_id, account_id, Measure(measure), limit, name))
    return found


def _crossings_in(
    conn: Connection, month: Month, changed: Sequence[_Seen], thresholds: dict[str, list[Threshold]], now: datetime
) -> list[tuple[Crossing, str | None]]:
    """The crossings of ``month`` among the changed accounts with thresholds, not yet fired, each with its currency.

    Thresholds that fired this month are dropped first: an account whose money thresholds all
    fired is not priced again (pricing is most of a pass's work).
    """
    seen = {s.account_id: s.report for s in changed if s.month == month and s.account_id in thresholds}
    candidates = [t for account in seen for t in thresholds[account]]
    fired = _fired(conn, month, candidates) if candidates else set()
    waiting = [t for t in candidates if t.id not in fired]
    if not waiting:
        return []
    values = {t.account_id: MonthValues(seen[t.account_id]) for t in waiting}
    priced = sorted({t.account_id for t in waiting if t.measure.is_money})
    currencies: dict[str, str] = {}
    if priced:
        for account, inputs in statements.load_inputs(conn, month, priced).items():
            statement, _ = inputs.build("open")
            fixed = statement.total - statement.subtotal  # adjustments and prior-period lines: not projected
            projected = project(statement.subtotal, fixed, month, to_micros(now))
            values[account] = MonthValues(seen[account], statement.total, projected)
            currencies[account] = statement.currency
    found = crossings(waiting, values, fired=())
    return [(c, currencies.get(c.threshold.account_id) if c.threshold.measure.is_money else None) for c in found]


def _fired(conn: Connection, month: Month, candidates: Sequence[Threshold]) -> set[str]:
    """The ids among ``candidates`` that already have a crossing in ``month``."""
    fired: set[str] = set()
    for chunk in _chunks(t.id for t in candidates):
        fired.update(
            conn.scalars(
                select(ThresholdCrossing.threshold_id).where(
                    ThresholdCrossing.month == str(month), ThresholdCrossing.threshold_id.in_(chunk)
                )
            )
        )
    return fired


def _fire(conn: Connection, crossing: Crossing, currency: str | None, now: datetime) -> bool:
    """Claim the crossing's (threshold, month) row; when it is new, write its webhook event and audit entry."""
    threshold = crossing.threshold
    row = {
        "threshold_id": threshold.id,
        "account_id": threshold.account_id,
        "month": str(crossing.month),
        "measure": threshold.measure.value,
        "limit_value": format(threshold.limit, "f"),
        "value": format(crossing.value, "f"),
        "currency": currency,
        "crossed_at": to_micros(now),
    }
    if conn.execute(_CLAIM, row).rowcount != 1:
        return False  # another pass fired it first: the unique (threshold, month) refused this one
    data = _payload(crossing, currency, now)
    event_id = record_event(conn, USAGE_THRESHOLD_CROSSED, threshold.account_id, data, now=now)
    with Session(bind=conn) as session:
        audit.record(
            session,
            actor=SYSTEM,
            account_id=threshold.account_id,
            action="alert.threshold_crossed",
            target=f"threshold {threshold.id} {crossing.month}",
            before=None,
            after={**data, "webhook_event_id": event_id},
            now=now,
        )
        session.flush()
    return True


def _payload(crossing: Crossing, currency: str | None, now: datetime) -> dict[str, Any]:
    """The webhook event's data (and the audit entry's after): the threshold, the month and what was seen."""
    threshold = crossing.threshold
    return {
        "threshold_id": threshold.id,
        "name": threshold.name,
        "account_id": threshold.account_id,
        "month": str(crossing.month),
        "measure": threshold.measure.value,
        "limit": format_value(threshold.measure, threshold.limit),
        "value": format_value(threshold.measure, crossing.value),
        "currency": currency,
        "crossed_at": now.isoformat(),
    }


def _remember(conn: Connection, changed: Sequence[_Seen], now: datetime) -> None:
    """Record the usage each changed account's month was checked at (the next pass compares with it)."""
    if changed:
        conn.execute(
            _REMEMBER,
            [
                dict(zip(("connection_minutes", "messages", "bytes_out"), usage_fingerprint(seen.report), strict=True))
                | {"account_id": seen.account_id, "month": str(seen.month), "checked_at": to_micros(now)}
                for seen in changed
            ],
        )
