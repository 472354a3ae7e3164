"""Queries behind statements, batch-shaped: each reads every account at once (or a given few).

Rows become domain values here (``CardVersion``, ``ledger.Adjustment``, ``UsageReport`` snapshots).
Usage itself is metering's: ``metering.service.usage_reports`` reads it for many accounts at once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from billing.domain import ledger
from billing.domain.rate_card_json import CardVersion, card_from_json
from billing.orm import Account, Adjustment, AuditEntry, NumberSequence, RateCardVersion, StatementRecord
from kernel.instants import Month
from metering.domain.usage import UsageReport

Accounts = Sequence[str] | None  # None: every account


def account_ids(conn: Connection, only: Accounts = None) -> list[str]:
    """Ids of the accounts (all, or those of ``only`` that exist), sorted."""
    query = select(Account.id).order_by(Account.id)
    if only is not None:
        query = query.where(Account.id.in_(only))
    return list(conn.scalars(query))


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
    months: dict[str, Month] = {}  # a few months, each on every account's rows: parsed once
    for account_id, text, status in conn.execute(query):
        result[account_id][months.get(text) or months.setdefault(text, Month.parse(text))] = status
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


def checked_revisions(conn: Connection, month: Month, only: Accounts = None) -> dict[str, dict[str, int] | None]:
    """The usage revisions each account's finalized statement of ``month`` recorded (None: none recorded)."""
    query = select(StatementRecord.account_id, StatementRecord.usage_revisions).where(
        StatementRecord.month == str(month), StatementRecord.status == ledger.FINALIZED
    )
    if only is not None:
        query = query.where(StatementRecord.account_id.in_(only))
    result: dict[str, dict[str, int] | None] = {}
    for account_id, revisions in conn.execute(query):
        result[account_id] = revisions
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


class StoredStatement(NamedTuple):
    """A stored statement row, as the draft builder compares it."""

    id: int
    status: str
    body: Any
    billed_usage: Any


def stored_for_month(conn: Connection, month: Month, only: Accounts = None) -> dict[str, StoredStatement]:
    """Stored statements of ``month``, per account."""
    query = select(
        StatementRecord.account_id,
        StatementRecord.id,
        StatementRecord.status,
        StatementRecord.body,
        StatementRecord.billed_usage,
    ).where(StatementRecord.month == str(month))
    if only is not None:
        query = query.where(StatementRecord.account_id.in_(only))
    return {account_id: StoredStatement(*stored) for account_id, *stored in conn.execute(query)}


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
            .values(
                body=row["body"],
                billed_usage=row["billed_usage"],
                usage_revisions=row["usage_revisions"],
                generated_at=now,
            )
        )


def insert_audit(conn: Connection, entries: list[dict[str, Any]]) -> None:
    """Append audit entries in one statement."""
    if entries:
        conn.execute(insert(AuditEntry), entries)


def take_number(conn: Connection, sequence: str, period: int) -> int:
    """Advance ``sequence`` in ``period`` by one and return the new value, in the caller's transaction.

    The counter row is locked (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE``
    already serialises writers) until the caller commits or rolls back, so two transactions never
    take the same value, and a rolled back one gives its value back: no gap.
    """
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    # The first document of a period creates its row; a concurrent creator waits, then does nothing.
    conn.execute(
        dialect.insert(NumberSequence)
        .values(sequence=sequence, period=period, last_value=0)
        .on_conflict_do_nothing(index_elements=["sequence", "period"])
    )
    counter = (NumberSequence.sequence == sequence) & (NumberSequence.period == period)
    last = conn.execute(select(NumberSequence.last_value).where(counter).with_for_update()).scalar_one()
    conn.execute(update(NumberSequence).where(counter).values(last_value=last + 1))
    return int(last) + 1


def last_number(conn: Connection, sequence: str, period: int) -> int:
    """The last value given out in ``sequence`` in ``period`` (0 before the first), without locking."""
    counter = (NumberSequence.sequence == sequence) & (NumberSequence.period == period)
    return int(conn.execute(select(NumberSequence.last_value).where(counter)).scalar_one_or_none() or 0)
