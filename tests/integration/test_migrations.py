"""The schema is built only by Alembic, every migration runs up and down, and models never drift."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Engine, MetaData, Table, inspect, select, text

from fanmeter import migrate
from kernel.db import UtcDateTime, make_engine, metadata
from kernel.instants import Month
from metering import service
from tests.stack import fresh_database


@pytest.fixture
def empty_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database() as url:
        yield url or f"sqlite:///{tmp_path_factory.mktemp('migrations') / 'schema.db'}"


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_every_migration_runs_up_and_down_and_up_again(empty_database_url: str) -> None:
    config = migrate.alembic_config(empty_database_url)
    revisions = list(ScriptDirectory.from_config(config).walk_revisions())

    for revision in reversed(revisions):
        command.upgrade(config, revision.revision)
    assert _tables(empty_database_url) == set(metadata.tables)
    for revision in revisions:
        command.downgrade(config, revision.down_revision or "base")
    assert _tables(empty_database_url) == set()
    command.upgrade(config, "head")
    assert _tables(empty_database_url) == set(metadata.tables)


def test_the_models_and_the_migrations_do_not_drift(empty_database_url: str) -> None:
    migrate.upgrade(empty_database_url)

    command.check(migrate.alembic_config(empty_database_url))  # raises if autogenerate finds a difference


def test_instants_round_trip_as_aware_utc_microseconds(engine: Engine) -> None:
    probe = Table("instant_probe", MetaData(), Column("at", UtcDateTime))
    instant = datetime(2026, 1, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    with engine.begin() as conn:
        probe.create(conn)
        try:
            conn.execute(probe.insert(), [{"at": instant}])
            stored = conn.execute(select(probe.c.at)).scalar_one()
        finally:
            probe.drop(conn)

    assert stored == instant
    assert stored.tzinfo is not None and stored.utcoffset().total_seconds() == 0


def test_upgrading_to_fold_state_requeues_stored_events_and_keeps_usage(empty_database_url: str) -> None:
    """Revision 0003 drops sessions computed without fold state; the next pass rebuilds the same usage."""
    migrate.upgrade(empty_database_url, "0002")
    engine = make_engine(empty_database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO raw_event (source, event_id, type, time_us, account_id, service_id, connection_id, "
                    "bytes_out, bytes_in, batch_id) VALUES "
                    "('broker/n1', 'o', 'fanout.connection.open', :t0, 'a', 's', 'c', NULL, NULL, 'b'), "
                    "('broker/n1', 'x', 'fanout.connection.close', :t1, 'a', 's', 'c', 500, 5, 'b')"
                ),
                {"t0": Month(2026, 2).start_us - 30_000_000, "t1": Month(2026, 2).start_us + 61_000_000},
            )
            conn.execute(
                text(
                    "INSERT INTO usage_daily (account_id, service_id, day, connection_minutes, messages_published, "
                    "messages_delivered, bytes_out) VALUES ('a', 's', '2026-01-31', 1, 4, 0, 0), "
                    "('a', 's', '2026-02-01', 1, 0, 0, 500)"
                )
            )

        migrate.upgrade(empty_database_url)
        service.rollup_until_clean(engine, limit=10)

        january = service.usage_for_month(engine, "a", Month(2026, 1))
        february = service.usage_for_month(engine, "a", Month(2026, 2))
        assert (january.connection_minutes, january.messages_published, january.bytes_out) == (1, 4, 0)
        assert (february.connection_minutes, february.bytes_out) == (1, 500)
    finally:
        engine.dispose()


def test_the_pending_batch_queue_keeps_what_waited_per_event_and_gives_it_back_on_downgrade(
    empty_database_url: str,
) -> None:
    """Revision 0006: queued events become one row per batch covering exactly them, and back."""
    migrate.upgrade(empty_database_url, "0003")
    engine = make_engine(empty_database_url)
    t0 = Month(2026, 2).start_us
    try:
        with engine.begin() as conn:
            # Batch a: its first event was folded already, its last two still wait; batch b waits whole.
            conn.execute(
                text(
                    "INSERT INTO raw_event (id, source, event_id, type, time_us, account_id, service_id, "
                    "connection_id, batch_id) VALUES "
                    "(1, 'n', 'a1', 'fanout.connection.open', :t, 'a', 's', 'c1', 'a'), "
                    "(2, 'n', 'b1', 'fanout.connection.open', :t, 'a', 's', 'c2', 'b'), "
                    "(3, 'n', 'a2', 'fanout.connection.alive', :t, 'a', 's', 'c1', 'a'), "
                    "(4, 'n', 'a3', 'fanout.connection.alive', :t, 'a', 's', 'c1', 'a')"
                ),
                {"t": t0},
            )
            conn.execute(
                text(
                    "INSERT INTO pending_connection_event (raw_event_id, account_id, service_id, connection_id, "
                    "type, time_us, event_id, source) SELECT id, account_id, service_id, connection_id, type, "
                    "time_us, event_id, source FROM raw_event WHERE id > 1"
                )
            )

        migrate.upgrade(empty_database_url)
        with engine.connect() as conn:
            queued = conn.execute(text("SELECT * FROM pending_batch ORDER BY batch_id")).all()
        assert [tuple(row) for row in queued] == [("a", 3, 4), ("b", 2, 2)]

        migrate.downgrade(empty_database_url, "0003")
        with engine.connect() as conn:
            ids = conn.execute(text("SELECT raw_event_id FROM pending_connection_event ORDER BY 1")).scalars().all()
        assert ids == [2, 3, 4]
    finally:
        engine.dispose()


def test_the_number_counters_start_after_the_statements_finalized_before_them(empty_database_url: str) -> None:
    """Revision 0010 keeps every existing number and seeds each year's counter with the year's count."""
    migrate.upgrade(empty_database_url, "0009")
    engine = make_engine(empty_database_url)
    finalized = [
        ("a1", "2025-12", datetime(2026, 1, 2, tzinfo=UTC)),
        ("a2", "2025-12", datetime(2026, 1, 3, tzinfo=UTC)),
    ]
    finalized += [("a1", "2025-11", datetime(2025, 12, 3, tzinfo=UTC))]
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO account (id, name, plan, currency, created_at) "
                    "VALUES ('a1', 'a', 'paid', 'USD', 0), ('a2', 'b', 'paid', 'USD', 0)"
                )
            )
            for n, (account, month, at) in enumerate(finalized, start=1):
                conn.execute(
                    text(
                        "INSERT INTO statement (account_id, month, status, body, billed_usage, number, generated_at, "
                        "finalized_at) VALUES (:a, :m, 'finalized', '{}', '{}', :n, 0, :at)"
                    ),
                    {"a": account, "m": month, "n": f"FM-{month}-{n:06d}", "at": int(at.timestamp()) * 1_000_000},
                )

        migrate.upgrade(empty_database_url)
        with engine.connect() as conn:
            counters = conn.execute(
                text("SELECT sequence, period, last_value FROM number_sequence ORDER BY period")
            ).all()
            numbers = conn.execute(text("SELECT number FROM statement ORDER BY id")).scalars().all()
        assert [tuple(row) for row in counters] == [("statement", 0, 3), ("statement", 2025, 1), ("statement", 2026, 2)]
        assert numbers == ["FM-2025-12-000001", "FM-2025-12-000002", "FM-2025-11-000003"]
    finally:
        engine.dispose()
