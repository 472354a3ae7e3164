"""Queries behind statements, batch-shaped: each reads every account at once (or a given few).

Reading 10,000 accounts' month is one ``GROUP BY`` over ``usage_daily``, not 10,000 round trips.
Rows become domain values here (``UsageReport``, ``CardVersion``, ``ledger.Adjustment``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update

from billing.domain import ledger
from billing.domain.rate_card_json import CardVersion, card_from_json
from billing.orm import Account, Adjustment, AuditEntry, RateCardVersion, StatementRecord
from kernel.instants import Month
from metering.domain.usage import ServiceUsage, UsageReport
from metering.orm import UsageDaily

Accounts = Sequence[str] | None  # None: every account


# Each usage measure summed, in the usage report's order (``ServiceUsage``'s fields).
_SUMS = (
    func.sum(UsageDaily.connection_minutes),
    func.sum(UsageDaily.messages_published),
    func.sum(UsageDaily.messages_delivered),
    func.sum(UsageDaily.bytes_out),
)


def account_ids(conn: Connection, only: Accounts = None) -> list[str]:
    """Ids of the accounts (all, or those of ``only`` that exist), sorted."""
    query = select(Account.id).order_by(Account.id)
    if only is not None:
        query = query.where(Account.id.in_(only))
    return list(conn.scalars(query))


def monthly_usage(conn: Connection, month: Month, only: Accounts = None) -> dict[str, UsageReport]:
    """Each account's usage of ``month`` per service, in one grouped query."""
    daily = UsageDaily
    query = (
        select(
            daily.account_id,
            daily.service_id,
            *_SUMS,
        )
        .where(daily.day >= month.first_day, daily.day <= month.last_day)
        .group_by(daily.account_id, daily.service_id)
        .order_by(daily.account_id, daily.service_id)
    )
    if only is not None:
        query = query.where(daily.account_id.in_(only))
    services: dict[str, list[ServiceUsage]] = defaultdict(list)
    for account_id, service_id, *sums in conn.execute(query):
        services[account_id].append(ServiceUsage(service_id, *(int(value or 0) for value in sums)))
    return {account_id: UsageReport(account_id, month, tuple(rows)) for account_id, rows in services.items()}


# Built once: the usage API runs it on every request.
_ONE_ACCOUNT_MONTH = (
    select(UsageDaily.service_id, *_SUMS)
    .where(
        UsageDaily.account_id == bindparam("account_id"),
        UsageDaily.day >= bindparam("first_day"),
        UsageDaily.day <= bindparam("last_day"),
    )
    .group_by(UsageDaily.service_id)
    .order_by(UsageDaily.service_id)
)


def account_month_usage(conn: Connection, account_id: str, month: Month) -> UsageReport | None:
    """One account's usage of ``month`` per service; None when it has no rollup rows that month."""
    rows = conn.execute(
        _ONE_ACCOUNT_MONTH, {"account_id": account_id, "first_day": month.first_day, "last_day": month.last_day}
    ).all()
    if not rows:
        return None
    services = tuple(ServiceUsage(service_id, *(int(value or 0) for value in sums)) for service_id, *sums in rows)
    return UsageReport(account_id, month, services)


def usage_by_month(
    conn: Connection, months: Sequence[Month], only: Accounts = None
) -> dict[Month, dict[str, UsageReport]]:
    """Each account's usage per service of each of ``months``, in one grouped query over their range."""
    if not months:
        return {}
    daily = UsageDaily
    month_of = (
        func.to_char(daily.day, "YYYY-MM") if conn.dialect.name == "postgresql" else func.strftime("%Y-%m", daily.day)
    )
    wanted = {str(m) for m in months}
    query = (
        select(
            month_of,
            daily.account_id,
            daily.service_id,
            *_SUMS,
        )
        .where(daily.day >= min(months).first_day, daily.day <= max(months).last_day)
        .group_by(month_of, daily.account_id, daily.service_id)
        .order_by(month_of, daily.account_id, daily.service_id)
    )
    if only is not None:
        query = query.where(daily.account_id.in_(only))
    services: dict[tuple[str, str], list[ServiceUsage]] = defaultdict(list)
    for month, account_id, service_id, *sums in conn.execute(query):
        if month in wanted:
            services[(month, account_id)].append(ServiceUsage(service_id, *(int(value or 0) for value in sums)))
    result: dict[Month, dict[str, UsageReport]] = {m: {} for m in months}
    for (month, account_id), rows in services.items():
        parsed = Month.parse(month)
        result[parsed][account_id] = UsageReport(account_id, parsed, tuple(rows))
    return result


def card_versions(conn: Connection, only: Accounts = None) -> list[CardVersion]:
    """Every stored rate-card version: the default card's and the accounts' (or ``only``'s) overrides."""
    version = RateCardVersion
    query = select(version.id, version.account_id, version.effective_month, version.card)
    if only is not None:
        query = query.where(version.account_id.is_(None) | version.account_id.in_(only))
    return [
        CardVersion(version_id, account_id, Month.parse(month), card_from_json(card))
        for version_id, account_id, month, card in conn.execute(query)
    ]


def statuses_before(conn: Connection, month: Month, only: Accounts = None) -> dict[str, dict[Month, str]]:
    """Each account's stored statement statuses for months before ``month``."""
    query = select(StatementRecord.account_id, StatementRecord.month, StatementRecord.status).where(
        StatementRecord.month < str(month)
    )
    if only is not None:
        query = query.where(StatementRecord.account_id.in_(only))
    result: dict[str, dict[Month, str]] = defaultdict(dict)
    for account_id, text, status in conn.execute(query):
        result[account_id][Month.parse(text)] = status
    return result


def finalized_snapshots(
    conn: Connection, since: Month, before: Month, only: Accounts = None
) -> dict[str, dict[Month, dict[Month, UsageReport]]]:
    """Billed usage of finalized statements with months in ``[since, before)``: account -> month -> snapshot."""
    query = select(StatementRecord.account_id, StatementRecord.month, StatementRecord.billed_usage).where(
        StatementRecord.status == ledger.FINALIZED,
        StatementRecord.month >= str(since),
        StatementRecord.month < str(before),
    )
    if only is not None:
        query = query.where(StatementRecord.account_id.in_(only))
    result: dict[str, dict[Month, dict[Month, UsageReport]]] = defaultdict(dict)
    months: dict[str, Month] = {}
    for account_id, text, billed in conn.execute(query):
        month = months.setdefault(text, Month.parse(text))
        result[account_id][month] = ledger.snapshot_from_json(account_id, billed)
    return result


def adjustments(conn: Connection, month: Month, only: Accounts = None) -> dict[str, list[ledger.Adjustment]]:
    """Finance's adjustments and credits for ``month``, per account, in the order they were added."""
    query = (
        select(Adjustment.account_id, Adjustment.amount, Adjustment.reason, Adjustment.service_id)
        .where(Adjustment.month == str(month))
        .order_by(Adjustment.id)
    )
    if only is not None:
        query = query.where(Adjustment.account_id.in_(only))
    result: dict[str, list[ledger.Adjustment]] = defaultdict(list)
    for account_id, amount, reason, service_id in conn.execute(query):
        result[account_id].append(ledger.Adjustment(amount, reason, service_id))
    return result


def stored_for_month(conn: Connection, month: Month, only: Accounts = None) -> dict[str, tuple[int, str, Any, Any]]:
    """Stored statements of ``month``: account -> (id, status, body, billed_usage)."""
    query = select(
        StatementRecord.account_id,
        StatementRecord.id,
        StatementRecord.status,
        StatementRecord.body,
        StatementRecord.billed_usage,
    ).where(StatementRecord.month == str(month))
    if only is not None:
        query = query.where(StatementRecord.account_id.in_(only))
    return {row[0]: (row[1], row[2], row[3], row[4]) for row in conn.execute(query)}


def insert_statements(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert new draft rows in one statement."""
    if rows:
        conn.execute(insert(StatementRecord), rows)


def update_drafts(conn: Connection, rows: list[dict[str, Any]], now: datetime) -> None:
    """Rewrite changed drafts by id; the status guard means a finalized row is never written."""
    for row in rows:
        conn.execute(
            update(StatementRecord)
            .where(StatementRecord.id == row["id"], StatementRecord.status == "draft")
            .values(body=row["body"], billed_usage=row["billed_usage"], generated_at=now)
        )


def insert_audit(conn: Connection, entries: list[dict[str, Any]]) -> None:
    """Append audit entries in one statement."""
    if entries:
        conn.execute(insert(AuditEntry), entries)
