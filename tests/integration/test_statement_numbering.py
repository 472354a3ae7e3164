"""Numbers under concurrency: several processes finalize (or credit) at once, no number twice, none skipped.

The test runs on whichever database the suite runs on: PostgreSQL when FANMETER_DATABASE_URL names
one (the counter row taken with SELECT … FOR UPDATE), else the suite's SQLite file (writers
serialised by BEGIN IMMEDIATE). Each process has its own engine and connections.
"""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from billing import accounts, credit_notes, statements
from billing import statement_store as store
from billing.domain.credit_notes import CreditRequest, credited
from billing.domain.exceptions import InvalidCreditNote
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


def _credit(url: str, account_id: str, start: Any, issued: Any) -> None:
    """One process's attempt at a credit note of 3.00 against the statement, once every process is ready."""
    engine = make_engine(url)
    try:
        start.wait(timeout=60)
        with Session(engine) as session:
            request = CreditRequest("at once", amount=Decimal("3.00"))
            issued.put(credit_notes.issue(session, FINANCE, account_id, MARCH, request, NOW).number)
    except InvalidCreditNote:
        issued.put("refused")
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


def test_credit_notes_issued_at_once_never_credit_more_than_the_statement_and_skip_no_number(
    engine: Engine, runtime: Runtime
) -> None:
    (account_id,) = _drafts(engine, 1)
    with Session(engine) as session:
        statements.add_adjustment(
            session, FINANCE, account_id, MARCH, amount=Decimal("10.00"), reason="r", service_id=None, now=NOW
        )
    with Session(engine) as session:
        statements.finalize(session, FINANCE, account_id, MARCH, NOW)
    context = multiprocessing.get_context("spawn")
    start, issued = context.Barrier(PROCESSES), context.Queue()
    url = runtime.settings.resolved_database_url
    workers = [context.Process(target=_credit, args=(url, account_id, start, issued)) for _ in range(PROCESSES)]
    for worker in workers:
        worker.start()
    outcomes = sorted(issued.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)

    # 10.00 takes three credit notes of 3.00; the fourth is refused and takes no number
    assert outcomes == ["CN-2026-000001", "CN-2026-000002", "CN-2026-000003", "refused"]
    with Session(engine) as session:
        assert credited(credit_notes.notes_of(session, account_id, MARCH)) == Decimal("9.00")


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
