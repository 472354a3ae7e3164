"""The month's statements of every account, for finance: filtered, searched, sorted and paged in SQL.

A page costs four queries whatever the number of accounts: the month's marker with the number of
accounts (the month's totals per status and their order by total are kept per process until a
statement of the month changes, and give the count of a page without a search), the page's
accounts, their stored statements, and their adjustments; a search first finds its accounts in
one pass over ``account`` and counts them. Accounts without a stored statement are ``open``:
their estimate is computed for the rows of the page only, in one batch (``statements.load_inputs``),
so the month's totals count open statements but sum stored (draft and finalized) ones only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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


# A search first finds its accounts in one pass over ``account`` (no join); the page and its count
# then look those few accounts up by key. A search matching more than this keeps the plain filter.
SEARCH_IDS_LIMIT = 500


def _search(conn: Connection, search: str) -> ColumnElement[bool]:
    """The accounts whose id or name contains ``search`` (case-insensitive), as a condition."""
    pattern = f"%{search.strip().lower()}%"
    matches = or_(func.lower(Account.id).like(pattern), func.lower(Account.name).like(pattern))
    ids = list(conn.scalars(select(Account.id).where(matches).limit(SEARCH_IDS_LIMIT + 1)))
    return matches if len(ids) > SEARCH_IDS_LIMIT else Account.id.in_(ids)


def _filters(conn: Connection, status: str | None, search: str | None) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if status == "open":
        where.append(StatementRecord.id.is_(None))
    elif status in ("draft", "finalized"):
        where.append(StatementRecord.status == status)
    if search and search.strip():
        where.append(_search(conn, search))
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
    where = _filters(conn, status, search)
    descending = sort.startswith("-")
    key = sort.lstrip("-")
    order = {
        "account": Account.id,
        "name": func.lower(Account.name),
        "status": func.coalesce(StatementRecord.status, "open"),
        "number": StatementRecord.number,
    }.get(key, Account.id)
    ordering = [order.desc().nulls_last() if descending else order.asc().nulls_last(), Account.id]
    marker, accounts = _marker(conn, month)
    sums = _month_sums(conn, month, marker)
    totals = _status_totals(sums, accounts)
    searched = bool(search and search.strip())
    if searched:
        count = conn.execute(select(func.count()).select_from(_joined(month)).where(*where)).scalar_one()
    else:  # without a search, the month's counts per status (kept with the sums) are the count
        count = sum(t.count for t in totals if status is None or t.status == status)
    pages = max(1, -(-count // PAGE_SIZE))
    page = min(max(1, page), pages)
    columns = select(Account.id, Account.name, Account.plan, Account.currency).select_from(_joined(month))
    if key == "total":  # by the month's cached totals, without reading a body per request
        chosen = _by_total(conn, sums, columns, where, status, searched, descending, page)
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
    return Listing(rows, count, page, pages, totals)


def _by_total(
    conn: Connection,
    sums: _MonthSums,
    query: Any,
    where: list[ColumnElement[bool]],
    status: str | None,
    searched: bool,
    descending: bool,
    page: int,
) -> list[Any]:
    """The page's rows sorted by stored total (open statements last), ties by account.

    The order of the stored statements is kept with the month's sums (per status, both ways), so
    a page is a slice of it; open statements follow in account order, read a page at a time. A
    search (a few accounts) is ordered here.
    """
    start = (page - 1) * PAGE_SIZE
    if searched:
        ids = list(conn.scalars(query.where(*where).with_only_columns(Account.id).order_by(Account.id)))
        stored = sorted((i for i in ids if i in sums.totals), key=lambda i: sums.totals[i], reverse=descending)
        wanted = (stored + [i for i in ids if i not in sums.totals])[start : start + PAGE_SIZE]
    else:
        ranked = [] if status == "open" else sums.ranked(status, descending)
        wanted = list(ranked[start : start + PAGE_SIZE])
        if len(wanted) < PAGE_SIZE and status in (None, "open"):
            wanted += conn.scalars(
                query.with_only_columns(Account.id)
                .where(StatementRecord.id.is_(None))
                .order_by(Account.id)
                .offset(max(0, start - len(ranked)))
                .limit(PAGE_SIZE - len(wanted))
            )
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
    statuses: dict[str, str]  # account -> its stored statement's status
    by_status: list[StatusTotal]
    _ranked: dict[tuple[str | None, bool], list[str]] = field(default_factory=dict)

    def ranked(self, status: str | None, descending: bool) -> list[str]:
        """Accounts with a stored statement (of ``status``, or any) by total, ties by account."""
        key = (status, descending)
        if key not in self._ranked:
            ids = sorted(a for a in self.totals if status is None or self.statuses[a] == status)
            self._ranked[key] = sorted(ids, key=self.totals.__getitem__, reverse=descending)  # stable: ties by id
        return self._ranked[key]


# The month's stored totals per process, keyed by the month and a marker that changes whenever a
# stored statement of the month is added, rebuilt or finalized (their count and latest instants).
_SUMS: dict[tuple[str, str], _MonthSums] = {}


def month_totals(conn: Connection, month: Month) -> list[StatusTotal]:
    """Per status: how many statements, and the sum of the stored ones (exact decimals).

    Summing reads every body of the month, so the sums are kept until a statement of the month
    changes; the marker is read on every call (no body is read for it).
    """
    marker, accounts = _marker(conn, month)
    return _status_totals(_month_sums(conn, month, marker), accounts)


def _status_totals(sums: _MonthSums, accounts: int) -> list[StatusTotal]:
    open_count = accounts - sum(t.count for t in sums.by_status)
    return [StatusTotal("open", open_count, None), *sums.by_status]


_ACCOUNTS = select(func.count()).select_from(Account).scalar_subquery()


def _marker(conn: Connection, month: Month) -> tuple[tuple[object, ...], int]:
    """What the month's kept sums are valid for, and the number of accounts: one query."""
    row = conn.execute(
        select(
            func.count(),
            func.max(StatementRecord.generated_at),
            func.max(StatementRecord.finalized_at),
            func.count(StatementRecord.number),
            _ACCOUNTS,
        ).where(StatementRecord.month == str(month))
    ).one()
    return tuple(row[:4]), int(row[4])


def _month_sums(conn: Connection, month: Month, marker: tuple[object, ...]) -> _MonthSums:
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
    statuses = {account: status for account, status, _ in rows}
    by_status: dict[str, list[Decimal]] = {"draft": [], "finalized": []}
    for account, status, _ in rows:
        by_status.setdefault(status, []).append(totals[account])
    sums = _MonthSums(
        marker,
        totals,
        statuses,
        [StatusTotal(s, len(by_status[s]), exact_sum(by_status[s])) for s in ("draft", "finalized")],
    )
    _SUMS[key] = sums
    return sums


def next_number(conn: Connection, month: Month) -> str:
    """The number finalizing a statement of ``month`` would take now (the same rule ``finalize`` uses)."""
    numbers = conn.scalars(select(StatementRecord.number).where(StatementRecord.number.like(f"FM-{month}-%")))
    return ledger.statement_number(month, ledger.next_sequence([n for n in numbers if n], month))
