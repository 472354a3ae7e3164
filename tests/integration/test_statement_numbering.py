"""Statement numbers under concurrency: several processes finalize at once, no number twice, none skipped.

The test runs on whichever database the suite runs on: PostgreSQL when FANMETER_DATABASE_URL names
one (the counter row taken with SELECT … FOR UPDATE), else the suite's SQLite file (writers
serialised by BEGIN IMMEDIATE). Each process has its own engine and connections.
"""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from billing import accounts, statements
from billing import statement_store as store
from billing.domain.numbering import Numbering
from billing.domain.roles import Principal
from billing.orm import StatementRecord
from kernel.db import make_engine
from kernel.instants import Month
from metering.bootstrap import Runtime
from tests.admin_world import SEEDER

MARCH = Month(2026, 3)
NOW = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)
FINANCE = Principal(token_id="tok_finance", kind="user", role="finance", user_id="usr_finance")
PROCESSES, STATEMENTS = 4, 24


def _finalize_share(url: str, account_ids: list[str], start: Any) -> None:
    """One process's share: wait for every process to be ready, then finalize one statement after another."""
    engine = make_engine(url)
    try:
        start.wait(timeout=60)
        for account_id in account_ids:
            with Session(engine) as session:
                statements.finalize(session, FINANCE, account_id, MARCH, NOW)
    finally:
        engine.dispose()


def _drafts(engine: Engine, count: int) -> list[str]:
    ids = [f"acc_n{index:03d}" for index in range(count)]
    with Session(engine) as session:
        for account_id in ids:
            accounts.create_account(
                session, SEEDER, name=account_id, plan="paid", currency="USD", account_id=account_id, now=NOW
            )
    with engine.begin() as conn:
        statements.build_drafts(conn, MARCH, NOW)
    return ids


def test_finalizing_from_several_processes_at_once_gives_every_number_once_without_a_gap(
    engine: Engine, runtime: Runtime
) -> None:
    ids = _drafts(engine, STATEMENTS)
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES)
    workers = [
        context.Process(target=_finalize_share, args=(runtime.settings.resolved_database_url, ids[i::PROCESSES], start))
        for i in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=180)

    assert [worker.exitcode for worker in workers] == [0] * PROCESSES
    with Session(engine) as session:
        numbers = list(session.scalars(select(StatementRecord.number).where(StatementRecord.status == "finalized")))
    assert sorted(numbers) == [f"FM-2026-{n:06d}" for n in range(1, STATEMENTS + 1)]
    with engine.connect() as conn:
        assert store.last_number(conn, "statement", 2026) == STATEMENTS


def test_a_number_taken_by_a_transaction_that_rolls_back_is_given_again(engine: Engine) -> None:
    with engine.connect() as conn:
        with conn.begin() as transaction:
            assert store.take_number(conn, "statement", 2026) == 1
            transaction.rollback()
        with conn.begin():
            assert store.take_number(conn, "statement", 2026) == 1
            assert store.take_number(conn, "statement", 2026) == 2


def test_the_sequence_restarts_in_a_new_year_and_the_prefix_comes_from_the_settings(engine: Engine) -> None:
    first, second = _drafts(engine, 2)
    numbering = Numbering(statement_prefix="INV")
    with Session(engine) as session:
        december = statements.finalize(
            session, FINANCE, first, MARCH, datetime(2026, 12, 31, 23, 59, tzinfo=UTC), numbering
        )
    with Session(engine) as session:
        next_year = statements.finalize(session, FINANCE, second, MARCH, datetime(2027, 1, 1, tzinfo=UTC), numbering)

    assert (december["number"], next_year["number"]) == ("INV-2026-000001", "INV-2027-000001")
    with engine.connect() as conn:
        assert (
            statements.next_number(conn, numbering, "statement", datetime(2027, 3, 1, tzinfo=UTC)) == "INV-2027-000002"
        )
