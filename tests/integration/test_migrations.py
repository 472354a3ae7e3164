"""The schema is built only by Alembic, every migration runs up and down, and models never drift."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Engine, MetaData, Table, inspect, select

from metering import migrate
from metering.db import UtcDateTime, make_engine, metadata
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
