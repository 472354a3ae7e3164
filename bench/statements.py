"""Statement drafts for 10,000 accounts from a month of daily rollups.

What it measures
  Setup (not timed): a freshly migrated database (a SQLite file by default, or a fresh
  PostgreSQL database with --pg-url), N accounts (default 10,000), each with 1-3 services
  and a usage_daily row per service and day of March 2026 (about 600,000 rows for 10,000
  accounts), inserted directly; 5 % of the accounts get a graduated contract rate card.
  Timed: ``billing.statements.build_due_drafts`` as the beat task calls it at 2026-04-04T00:00Z
  (72 h grace): one grouped query for every account's monthly usage, rate-card resolution,
  pricing, and one batched insert of the drafts and their audit entries, in one transaction.
  Then a second run, which finds every draft built and writes nothing.
  Checked: one draft per account, and the sum of the drafts' totals equals an independent
  re-pricing of a sample of accounts.
  Goal (from the issue): at most 10 s. Prints seconds and peak RSS (VmHWM, reset before the
  timed step where the kernel allows it, else ru_maxrss of the whole process).

How to run (from the repository root):
    .venv/bin/python bench/statements.py                 # 10,000 accounts on SQLite
    .venv/bin/python bench/statements.py --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
    .venv/bin/python bench/statements.py --history-months 12    # without and with 12 finalized months
With --history-months N two databases are seeded with the same accounts and March usage, one
also with N finalized months before March (their usage and statements), and their drafts are
timed alternately (--rounds, default 3; each round after the first deletes the drafts again);
the median with history over the median without is the issue's ratio (goal at most 1.2).
This is a benchmark, not a test: pytest does not collect it.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from billing import statements
from billing.domain import ledger
from billing.domain.statements import build_statement
from billing.orm import Account, AuditEntry, RateCardVersion, StatementRecord
from fanmeter import migrate
from kernel.instants import Month
from metering.orm import UsageDaily, UsageMonthRevision

MONTH = Month(2026, 3)
NOW = datetime(2026, 4, 4, tzinfo=UTC)
CONTRACT = {
    "name": "contract",
    "currency": "USD",
    "connection_minutes": [{"up_to": 1, "unit_price": "1.000000"}, {"up_to": None, "unit_price": "0.500000"}],
    "messages": [{"up_to": 10, "unit_price": "2.000000"}, {"up_to": None, "unit_price": "1.500000"}],
    "bandwidth": [{"up_to": None, "unit_price": "0.100000"}],
}


def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def days_of(month: Month) -> list[date]:
    return [month.first_day + timedelta(days=n) for n in range((month.last_day - month.first_day).days + 1)]


def seed(engine: Any, accounts: int, rng: random.Random) -> int:
    days = days_of(MONTH)
    account_rows: list[dict[str, Any]] = [
        {"id": f"acc_{n:06d}", "name": f"bench {n}", "plan": "paid", "currency": "USD", "created_at": NOW}
        for n in range(accounts)
    ]
    usage_rows: list[dict[str, Any]] = []
    with engine.begin() as conn:
        conn.execute(insert(Account), account_rows)
        contracts = [
            {
                "account_id": row["id"],
                "effective_month": "2026-01",
                "card": CONTRACT,
                "created_at": NOW,
                "created_by": "bench",
            }
            for row in account_rows[::20]  # 5 % of the accounts have a contract
        ]
        conn.execute(insert(RateCardVersion), contracts)
        for row in account_rows:
            for service in range(rng.randint(1, 3)):
                usage_rows.extend(_days(row["id"], f"svc-{service}", days, rng))
            if len(usage_rows) >= 50_000:
                conn.execute(insert(UsageDaily), usage_rows)
                usage_rows.clear()
        conn.execute(insert(UsageDaily), usage_rows)
        # The revision add_usage would have given March's usage, written once (inserted directly here).
        revisions = [{"account_id": row["id"], "month": str(MONTH), "revision": 1} for row in account_rows]
        conn.execute(insert(UsageMonthRevision), revisions)
        return int(conn.scalar(select(func.count()).select_from(UsageDaily)) or 0)


def _days(account: str, service: str, days: list[date], rng: random.Random) -> list[dict[str, Any]]:
    return [
        {
            "account_id": account,
            "service_id": service,
            "day": day,
            "connection_minutes": rng.randint(0, 2_000_000),
            "messages_published": rng.randint(0, 500_000),
            "messages_delivered": rng.randint(0, 5_000_000),
            "bytes_out": rng.randint(0, 50 * 10**9),
        }
        for day in days
    ]


def seed_history(engine: Any, accounts: int, months: int, rng: random.Random) -> None:
    """Finalized statements for the ``months`` before March, billing exactly the usage stored for them."""
    history = [MONTH]
    for _ in range(months):
        history.append(ledger.previous_month(history[-1]))
    for position, month in enumerate(history[1:], start=1):
        # As the draft builder records them: each statement read its own month and every earlier
        # finalized month (all at revision 1, their usage being written once, below).
        revisions = {str(m): 1 for m in history[position:]}
        usage_rows: list[dict[str, Any]] = []
        statements_rows: list[dict[str, Any]] = []
        for n in range(accounts):
            account = f"acc_{n:06d}"
            rows = _days(account, "svc-0", days_of(month), rng)
            usage_rows.extend(rows)
            totals = {
                k: sum(r[k] for r in rows)
                for k in ("connection_minutes", "messages_published", "messages_delivered", "bytes_out")
            }
            billed = {str(month): [{"service_id": "svc-0", **totals}]}
            statements_rows.append(
                {
                    "account_id": account, "month": str(month), "status": "finalized", "body": {"bench": True},
                    "billed_usage": billed, "number": f"FM-{month}-{n + 1:06d}", "content_hash": "0" * 64,
                    "generated_at": NOW, "finalized_at": NOW, "finalized_by": "bench", "usage_revisions": revisions,
                }
            )  # fmt: skip
        with engine.begin() as conn:
            for start in range(0, len(usage_rows), 50_000):
                conn.execute(insert(UsageDaily), usage_rows[start : start + 50_000])
            conn.execute(insert(StatementRecord), statements_rows)
            revision_rows = [
                {"account_id": row["account_id"], "month": str(month), "revision": 1} for row in statements_rows
            ]
            conn.execute(insert(UsageMonthRevision), revision_rows)


def check(engine: Any, accounts: int, rng: random.Random) -> None:
    with Session(engine) as session:
        drafts = session.scalar(
            select(func.count()).select_from(StatementRecord).where(StatementRecord.month == str(MONTH))
        )
        assert drafts == accounts, f"{drafts} drafts for {accounts} accounts"
        for account in rng.sample([f"acc_{n:06d}" for n in range(accounts)], 20):
            stored = session.scalars(
                select(StatementRecord.body).where(
                    StatementRecord.account_id == account, StatementRecord.month == str(MONTH)
                )
            ).one()
            inputs = statements.load_inputs(session.connection(), MONTH, [account])[account]
            assert stored == build_statement(inputs.usage, inputs.card, "draft").to_json(), account
        audit = session.scalar(select(func.count()).select_from(AuditEntry))
        assert audit == accounts, audit


def seed_database(engine: Any, accounts: int, history: int) -> None:
    rng = random.Random(7)
    started = time.perf_counter()
    rows = seed(engine, accounts, rng)
    seed_history(engine, accounts, history, rng)
    seconds = time.perf_counter() - started
    print(
        f"seeded {accounts:,} accounts, {rows:,} usage_daily rows of {MONTH}, {history} finalized months before "
        f"in {seconds:.1f} s ({engine.dialect.name})"
    )


def timed_drafts(engine: Any, label: str) -> float:
    exact = reset_peak()
    started = time.perf_counter()
    cpu = time.process_time()
    run_1 = statements.build_due_drafts(engine, NOW, 72)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = peak_rss_mb()
    print(
        f"{label}drafts for {run_1.month}: {run_1.created:,} created in {elapsed:.2f} s "
        f"({run_1.created / elapsed:,.0f} accounts/s, {cpu:.2f} s CPU of this process); peak RSS {peak:.0f} MB"
        f"{'' if exact else ' (whole process: clear_refs not allowed)'}"
    )
    return elapsed


def undo_drafts(engine: Any) -> None:
    """Remove what a draft run wrote (March's drafts, their audit entries and webhook events) for another round."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM statement WHERE month = :m AND status = 'draft'"), {"m": str(MONTH)})
        conn.execute(text("DELETE FROM audit_entry WHERE action = 'statement.draft'"))
        conn.execute(text("DELETE FROM webhook_delivery"))
        conn.execute(text("DELETE FROM webhook_event"))


def finish(engine: Any, accounts: int) -> None:
    started = time.perf_counter()
    run_2 = statements.build_due_drafts(engine, NOW, 72)
    print(
        f"second run: {run_2.created} created, {run_2.unchanged:,} already built, {time.perf_counter() - started:.2f} s"
    )
    check(engine, accounts, random.Random(11))
    print("checked: one draft per account; 20 sampled drafts equal an independent pricing")


def run(url: str, accounts: int, history: int) -> None:
    engine = create_engine(url)
    migrate.upgrade(url)
    seed_database(engine, accounts, history)
    elapsed = timed_drafts(engine, "")
    finish(engine, accounts)
    print(f"goal: at most 10 s -> {'met' if elapsed <= 10 else 'NOT met'}")
    engine.dispose()


def run_pair(urls: tuple[str, str], accounts: int, history: int, rounds: int) -> None:
    """The same accounts and March usage without and with ``history`` finalized months, timed alternately."""
    engines = [create_engine(url) for url in urls]
    for engine, months in zip(engines, (0, history), strict=True):
        migrate.upgrade(engine.url.render_as_string(hide_password=False))
        seed_database(engine, accounts, months)
    times: tuple[list[float], list[float]] = ([], [])
    for round_ in range(rounds):
        for engine, months, spent in zip(engines, (0, history), times, strict=True):
            if round_:
                undo_drafts(engine)
            spent.append(timed_drafts(engine, f"round {round_ + 1}, {months:>2} months of history: "))
    for engine in engines:
        finish(engine, accounts)
        engine.dispose()
    flat, deep = (statistics.median(spent) for spent in times)
    ratio = deep / flat
    print(
        f"median of {rounds}: {flat:.2f} s without history, {deep:.2f} s with {history} finalized months "
        f"-> {ratio:.2f}x (goal at most 1.2x: {'met' if ratio <= 1.2 else 'NOT met'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument(
        "--history-months",
        "--history",
        type=int,
        default=0,
        help="also time a second database whose accounts have this many finalized months before March",
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds with --history-months")
    parser.add_argument("--pg-url", help="a PostgreSQL server URL; fresh databases are created on it and dropped")
    args = parser.parse_args()
    pair = args.history_months > 0
    if not args.pg_url:
        with tempfile.TemporaryDirectory() as directory:
            if pair:
                urls = (f"sqlite:///{directory}/flat.db", f"sqlite:///{directory}/history.db")
                run_pair(urls, args.accounts, args.history_months, args.rounds)
            else:
                run(f"sqlite:///{directory}/bench.db", args.accounts, 0)
        return
    names = [f"fanmeter_bench_{uuid.uuid4().hex[:8]}" for _ in range(2 if pair else 1)]
    server = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        for name in names:
            conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        made = [make_url(args.pg_url).set(database=name).render_as_string(hide_password=False) for name in names]
        if pair:
            run_pair((made[0], made[1]), args.accounts, args.history_months, args.rounds)
        else:
            run(made[0], args.accounts, 0)
    finally:
        with server.connect() as conn:
            for name in names:
                conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        server.dispose()


if __name__ == "__main__":
    main()
