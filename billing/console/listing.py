"""The month's statements of every account, for finance: filtered, searched, sorted and paged in SQL.

A page costs three queries whatever the number of accounts: the page's rows (accounts left-joined
to their stored statement of the month and a count of its adjustments), the count of matching
accounts, and the month's totals per status. Accounts without a stored statement are ``open``:
their estimate is computed for the rows of the page only, in one batch (``statements.load_inputs``),
so the month's totals count open statements but sum stored (draft and finalized) ones only.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select
from sqlalchemy.sql import ColumnElement

from billing import statements
from billing.domain import ledger
from billing.domain.money import exact_sum, to_decimal
from billing.orm import Account, Adjustment, StatementRecord
from kernel.instants import Month

PAGE_SIZE = 25
STATUSES = ("open", "draft", "finalized")
SORTS = ("account", "name", "status", "total", "number")


@dataclass(frozen=True)
class Row:
    account_id: str
    name: str
    plan: str
    currency: str
    status: str
    number: str | None
    total: str | None
    adjustments: int


@dataclass(frozen=True)
class StatusTotal:
    status: str
    count: int
    total: Decimal | None  # None for open statements: estimates, not summed


@dataclass(frozen=True)
class Listing:
    rows: list[Row]
    count: int
    page: int
    pages: int
    totals: list[StatusTotal]


def _filters(status: str | None, search: str | None) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if status == "open":
        where.append(StatementRecord.id.is_(None))
    elif status in ("draft", "finalized"):
        where.append(StatementRecord.status == status)
    if search:
        pattern = f"%{search.strip().lower()}%"
        where.append(or_(func.lower(Account.id).like(pattern), func.lower(Account.name).like(pattern)))
    return where


def _joined(month: Month):  # type: ignore[no-untyped-def]
    return Account.__table__.outerjoin(
        StatementRecord.__table__, and_(StatementRecord.account_id == Account.id, StatementRecord.month == str(month))
    )


def month_listing(
    conn: Connection, month: Month, *, status: str | None, search: str | None, sort: str, page: int
) -> Listing:
    """One page of the month's statements, the number of matches and the month's totals.

    The page's accounts are chosen first without reading any statement body (PostgreSQL would
    parse every body of the month before sorting); only the page's bodies are then read.
    Sorting by total is the exception: it has to read every body of the month.
    """
    where = _filters(status, search)
    descending = sort.startswith("-")
    key = sort.lstrip("-")
    order = {
        "account": Account.id,
        "name": func.lower(Account.name),
        "status": func.coalesce(StatementRecord.status, "open"),
        "number": StatementRecord.number,
    }.get(key, Account.id)
    ordering = [order.desc().nulls_last() if descending else order.asc().nulls_last(), Account.id]
    count = conn.execute(select(func.count()).select_from(_joined(month)).where(*where)).scalar_one()
    pages = max(1, -(-count // PAGE_SIZE))
    page = min(max(1, page), pages)
    columns = select(Account.id, Account.name, Account.plan, Account.currency).select_from(_joined(month))
    if key == "total":  # by the month's cached totals, without reading a body per request
        chosen = _by_total(conn, month, columns.where(*where), descending, page)
    else:
        chosen = list(
            conn.execute(columns.where(*where).order_by(*ordering).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE))
        )
    ids = [row[0] for row in chosen]
    stored = {
        account: (status_, number, total)
        for account, status_, number, total in conn.execute(
            select(
                StatementRecord.account_id,
                StatementRecord.status,
                StatementRecord.number,
                StatementRecord.body["total"].as_string(),
            ).where(StatementRecord.month == str(month), StatementRecord.account_id.in_(ids))
        )
    }
    adjustments = dict(
        conn.execute(
            select(Adjustment.account_id, func.count())
            .where(Adjustment.month == str(month), Adjustment.account_id.in_(ids))
            .group_by(Adjustment.account_id)
        ).all()
    )
    estimates = _estimates(conn, month, [account for account in ids if account not in stored])
    rows = []
    for account, name, plan, currency in chosen:
        status_, number, total = stored.get(account, ("open", None, estimates.get(account)))
        rows.append(Row(account, name, plan, currency, status_, number, total, int(adjustments.get(account, 0))))
    return Listing(rows, count, page, pages, month_totals(conn, month))


def _by_total(conn: Connection, month: Month, query: Any, descending: bool, page: int) -> list[Any]:
    """The page's rows sorted by stored total (open statements last), ties by account."""
    totals = _month_sums(conn, month).totals
    ids = list(conn.scalars(query.with_only_columns(Account.id).order_by(Account.id)))
    # A stable sort of ids in account order: ties stay by account, as in every other sort.
    stored = sorted((i for i in ids if i in totals), key=lambda i: totals[i], reverse=descending)
    ordered = stored + [i for i in ids if i not in totals]
    wanted = ordered[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    rows = {row[0]: row for row in conn.execute(query.where(Account.id.in_(wanted)))}
    return [rows[i] for i in wanted]


def _estimates(conn: Connection, month: Month, account_ids: list[str]) -> dict[str, str]:
    """Open estimates of a few accounts, in one batch of queries."""
    if not account_ids:
        return {}
    inputs = statements.load_inputs(conn, month, account_ids)
    return {account: str(data.build("open")[0].to_json()["total"]) for account, data in inputs.items()}


@dataclass(frozen=True)
class _MonthSums:
    marker: tuple[object, ...]
    totals: dict[str, Decimal]  # account -> its stored statement's total
    by_status: list[StatusTotal]


# The month's stored totals per process, keyed by the month and a marker that changes whenever a
# stored statement of the month is added, rebuilt or finalized (their count and latest instants).
_SUMS: dict[tuple[str, str], _MonthSums] = {}


def month_totals(conn: Connection, month: Month) -> list[StatusTotal]:
    """Per status: how many statements, and the sum of the stored ones (exact decimals).

    Summing reads every body of the month, so the sums are kept until a statement of the month
    changes; the marker is read on every call (no body is read for it).
    """
    marker = _marker(conn, month)
    accounts = conn.execute(select(func.count()).select_from(Account)).scalar_one()
    stored = _month_sums(conn, month, marker).by_status
    open_count = accounts - sum(t.count for t in stored)
    return [StatusTotal("open", open_count, None), *stored]


def _marker(conn: Connection, month: Month) -> tuple[object, ...]:
    return tuple(
        conn.execute(
            select(
                func.count(),
                func.max(StatementRecord.generated_at),
                func.max(StatementRecord.finalized_at),
                func.count(StatementRecord.number),
            ).where(StatementRecord.month == str(month))
        ).one()
    )


def _month_sums(conn: Connection, month: Month, marker: tuple[object, ...] | None = None) -> _MonthSums:
    marker = marker if marker is not None else _marker(conn, month)
    key = (str(conn.engine.url), str(month))
    cached = _SUMS.get(key)
    if cached is not None and cached.marker == marker:
        return cached
    rows = conn.execute(
        select(StatementRecord.account_id, StatementRecord.status, StatementRecord.body["total"].as_string()).where(
            StatementRecord.month == str(month)
        )
    ).all()
    totals = {account: to_decimal(total) for account, _, total in rows}
    by_status: dict[str, list[Decimal]] = {"draft": [], "finalized": []}
    for account, status, _ in rows:
        by_status.setdefault(status, []).append(totals[account])
    sums = _MonthSums(
        marker, totals, [StatusTotal(s, len(by_status[s]), exact_sum(by_status[s])) for s in ("draft", "finalized")]
    )
    _SUMS[key] = sums
    return sums


def next_number(conn: Connection, month: Month) -> str:
    """The number finalizing a statement of ``month`` would take now (the same rule ``finalize`` uses)."""
    numbers = conn.scalars(select(StatementRecord.number).where(StatementRecord.number.like(f"FM-{month}-%")))
    return ledger.statement_number(month, ledger.next_sequence([n for n in numbers if n], month))
