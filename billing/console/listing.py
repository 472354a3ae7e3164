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

from sqlalchemy import Connection, and_, bindparam, func, or_, select
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.elements import BindParameter

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


# A search first finds its accounts in one pass over ``account`` (no join); the page and its count
# then look those few accounts up by key. A search matching more than this keeps the plain filter.
SEARCH_IDS_LIMIT = 500


_MONTH: BindParameter[str] = bindparam("month")
_JOINED = Account.__table__.outerjoin(
    StatementRecord.__table__, and_(StatementRecord.account_id == Account.id, StatementRecord.month == _MONTH)
)
_MATCHES = or_(func.lower(Account.id).like(bindparam("pattern")), func.lower(Account.name).like(bindparam("pattern")))
_FOUND = Account.id.in_(bindparam("found", expanding=True))
_SEARCH = select(Account.id).where(_MATCHES).limit(SEARCH_IDS_LIMIT + 1)
_IS_OPEN = StatementRecord.id.is_(None)
_OF_STATUS = StatementRecord.status == bindparam("status")
_COLUMNS = select(Account.id, Account.name, Account.plan, Account.currency).select_from(_JOINED)
_COUNT = select(func.count()).select_from(_JOINED)
_IDS: BindParameter[list[str]] = bindparam("ids", expanding=True)
_STORED = select(
    StatementRecord.account_id,
    StatementRecord.status,
    StatementRecord.number,
    StatementRecord.body["total"].as_string(),
).where(StatementRecord.month == _MONTH, StatementRecord.account_id.in_(_IDS))
_ADJUSTMENTS = (
    select(Adjustment.account_id, func.count())
    .where(Adjustment.month == _MONTH, Adjustment.account_id.in_(_IDS))
    .group_by(Adjustment.account_id)
)
_ORDERS: dict[str, Any] = {
    "account": Account.id,
    "name": func.lower(Account.name),
    "status": func.coalesce(StatementRecord.status, "open"),
    "number": StatementRecord.number,
}
# Statements are built once per shape (filters, order) and run with bound values: building and
# caching a SQLAlchemy statement per request cost about as much as running it.
_PAGES: dict[tuple[object, ...], Any] = {}


@dataclass(frozen=True)
class _Filter:
    where: tuple[ColumnElement[bool], ...]
    params: dict[str, Any]
    searched: bool


def _filters(conn: Connection, month: Month, status: str | None, search: str | None) -> _Filter:
    """The conditions of a status and a search, with their values (a search finds its accounts first)."""
    where: list[ColumnElement[bool]] = []
    params: dict[str, Any] = {"month": str(month)}
    if status == "open":
        where.append(_IS_OPEN)
    elif status in ("draft", "finalized"):
        where.append(_OF_STATUS)
        params["status"] = status
    searched = bool(search and search.strip())
    if search and searched:
        pattern = f"%{search.strip().lower()}%"
        found = list(conn.scalars(_SEARCH, {"pattern": pattern}))
        if len(found) > SEARCH_IDS_LIMIT:
            where.append(_MATCHES)
            params["pattern"] = pattern
        else:
            where.append(_FOUND)
            params["found"] = found
    return _Filter(tuple(where), params, searched)


def _page_query(where: tuple[ColumnElement[bool], ...], key: str, descending: bool) -> Any:
    shape = (where, key, descending)
    if shape not in _PAGES:
        order = _ORDERS.get(key, Account.id)
        ordering = [order.desc().nulls_last() if descending else order.asc().nulls_last(), Account.id]
        _PAGES[shape] = _COLUMNS.where(*where).order_by(*ordering).limit(bindparam("limit")).offset(bindparam("offset"))
    return _PAGES[shape]


def month_listing(
    conn: Connection, month: Month, *, status: str | None, search: str | None, sort: str, page: int
) -> Listing:
    """One page of the month's statements, the number of matches and the month's totals.

    The page's accounts are chosen first without reading any statement body (PostgreSQL would
    parse every body of the month before sorting); only the page's bodies are then read.
    Sorting by total is the exception: it has to read every body of the month.
    """
    chosen_filter = _filters(conn, month, status, search)
    where, params = chosen_filter.where, chosen_filter.params
    descending = sort.startswith("-")
    key = sort.lstrip("-")
    marker, accounts = _marker(conn, month)
    sums = _month_sums(conn, month, marker)
    totals = _status_totals(sums, accounts)
    if chosen_filter.searched:
        count = conn.execute(_COUNT.where(*where), params).scalar_one()
    else:  # without a search, the month's counts per status (kept with the sums) are the count
        count = sum(t.count for t in totals if status is None or t.status == status)
    pages = max(1, -(-count // PAGE_SIZE))
    page = min(max(1, page), pages)
    if key == "total":  # by the month's cached totals, without reading a body per request
        chosen = _by_total(conn, sums, chosen_filter, status, descending, page)
    else:
        paging = {**params, "limit": PAGE_SIZE, "offset": (page - 1) * PAGE_SIZE}
        chosen = list(conn.execute(_page_query(where, key, descending), paging))
    ids = [row[0] for row in chosen]
    by_ids = {"month": str(month), "ids": ids}
    stored = {account: (status_, number, total) for account, status_, number, total in conn.execute(_STORED, by_ids)}
    adjustments = dict(conn.execute(_ADJUSTMENTS, by_ids).all())
    estimates = _estimates(conn, month, [account for account in ids if account not in stored])
    rows = []
    for account, name, plan, currency in chosen:
        status_, number, total = stored.get(account, ("open", None, estimates.get(account)))
        rows.append(Row(account, name, plan, currency, status_, number, total, int(adjustments.get(account, 0))))
    return Listing(rows, count, page, pages, totals)


def _by_total(
    conn: Connection, sums: _MonthSums, chosen: _Filter, status: str | None, descending: bool, page: int
) -> list[Any]:
    """The page's rows sorted by stored total (open statements last), ties by account.

    The order of the stored statements is kept with the month's sums (per status, both ways), so
    a page is a slice of it; open statements follow in account order, read a page at a time. A
    search (a few accounts) is ordered here.
    """
    start = (page - 1) * PAGE_SIZE
    params = chosen.params
    if chosen.searched:
        ids = list(
            conn.scalars(_COLUMNS.with_only_columns(Account.id).where(*chosen.where).order_by(Account.id), params)
        )
        stored = sorted((i for i in ids if i in sums.totals), key=lambda i: sums.totals[i], reverse=descending)
        wanted = (stored + [i for i in ids if i not in sums.totals])[start : start + PAGE_SIZE]
    else:
        ranked = [] if status == "open" else sums.ranked(status, descending)
        wanted = list(ranked[start : start + PAGE_SIZE])
        if len(wanted) < PAGE_SIZE and status in (None, "open"):
            paging = {**params, "limit": PAGE_SIZE - len(wanted), "offset": max(0, start - len(ranked))}
            wanted += conn.scalars(_OPEN_IDS, paging)
    rows = {row[0]: row for row in conn.execute(_COLUMNS.where(Account.id.in_(_IDS)), {**params, "ids": wanted})}
    return [rows[i] for i in wanted]


_OPEN_IDS = (
    _COLUMNS.with_only_columns(Account.id)
    .where(_IS_OPEN)
    .order_by(Account.id)
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)


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
_MARKER = select(
    func.count(),
    func.max(StatementRecord.generated_at),
    func.max(StatementRecord.finalized_at),
    func.count(StatementRecord.number),
    _ACCOUNTS,
).where(StatementRecord.month == _MONTH)


def _marker(conn: Connection, month: Month) -> tuple[tuple[object, ...], int]:
    """What the month's kept sums are valid for, and the number of accounts: one query."""
    row = conn.execute(_MARKER, {"month": str(month)}).one()
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
