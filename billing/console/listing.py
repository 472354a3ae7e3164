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

from sqlalchemy import Connection, and_, func, or_, select
from sqlalchemy.sql import ColumnElement

from billing import statements
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
    """One page of the month's statements, the number of matches and the month's totals."""
    where = _filters(status, search)
    total_text = StatementRecord.body["total"].as_string()
    adjustments = (
        select(Adjustment.account_id, func.count().label("n"))
        .where(Adjustment.month == str(month))
        .group_by(Adjustment.account_id)
        .subquery()
    )
    descending = sort.startswith("-")
    key = sort.lstrip("-")
    order = {
        "account": Account.id,
        "name": func.lower(Account.name),
        "status": func.coalesce(StatementRecord.status, "open"),
        "total": StatementRecord.body["total"].as_numeric(18, 2),
        "number": StatementRecord.number,
    }.get(key, Account.id)
    ordering = [order.desc().nulls_last() if descending else order.asc().nulls_last(), Account.id]
    query = (
        select(
            Account.id,
            Account.name,
            Account.plan,
            Account.currency,
            StatementRecord.status,
            StatementRecord.number,
            total_text,
            func.coalesce(adjustments.c.n, 0),
        )
        .select_from(_joined(month).outerjoin(adjustments, adjustments.c.account_id == Account.id))
        .where(*where)
        .order_by(*ordering)
    )
    count = conn.execute(select(func.count()).select_from(_joined(month)).where(*where)).scalar_one()
    pages = max(1, -(-count // PAGE_SIZE))
    page = min(max(1, page), pages)
    raw = conn.execute(query.limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all()
    estimates = _estimates(conn, month, [r[0] for r in raw if r[4] is None])
    rows = [
        Row(r[0], r[1], r[2], r[3], r[4] or "open", r[5], r[6] if r[4] else estimates.get(r[0]), int(r[7])) for r in raw
    ]
    return Listing(rows, count, page, pages, month_totals(conn, month))


def _estimates(conn: Connection, month: Month, account_ids: list[str]) -> dict[str, str]:
    """Open estimates of a few accounts, in one batch of queries."""
    if not account_ids:
        return {}
    inputs = statements.load_inputs(conn, month, account_ids)
    return {account: str(data.build("open")[0].to_json()["total"]) for account, data in inputs.items()}


def month_totals(conn: Connection, month: Month) -> list[StatusTotal]:
    """Per status: how many statements, and the sum of the stored ones (exact decimals)."""
    stored = conn.execute(
        select(StatementRecord.status, StatementRecord.body["total"].as_string()).where(
            StatementRecord.month == str(month)
        )
    ).all()
    by_status: dict[str, list[Decimal]] = {"draft": [], "finalized": []}
    for status, total in stored:
        by_status.setdefault(status, []).append(to_decimal(total))
    accounts = conn.execute(select(func.count()).select_from(Account)).scalar_one()
    open_count = accounts - len(stored)
    return [
        StatusTotal("open", open_count, None),
        *(StatusTotal(s, len(by_status[s]), exact_sum(by_status[s])) for s in ("draft", "finalized")),
    ]


def next_number(conn: Connection, month: Month) -> str:
    """The number finalizing a statement of ``month`` would take now (the same rule ``finalize`` uses)."""
    from billing.domain import ledger

    numbers = conn.scalars(select(StatementRecord.number).where(StatementRecord.number.like(f"FM-{month}-%")))
    return ledger.statement_number(month, ledger.next_sequence([n for n in numbers if n], month))
