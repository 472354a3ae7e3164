from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from fanmeter import migrate
from fanmeter.pipeline import compose
from metering.bootstrap import Runtime, bootstrap
from metering.celery_app import declare_queue
from tests.admin_world import clear_admin_tables
from tests.stack import migrated_stack, running_worker, settings_for

PIPELINE_TABLES = (
    "raw_event", "rejected_event", "ingest_batch", "pending_batch", "connection_session",
    "connection_day", "usage_daily",
)  # fmt: skip


@pytest.fixture(scope="session")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment of a migrated database (SQLite, or a fresh PostgreSQL database) and a queue."""
    with migrated_stack(tmp_path_factory.mktemp("stack"), _upgrade) as env:
        yield env


def _upgrade(env: dict[str, str]) -> None:
    migrate.upgrade(settings_for(env).resolved_database_url)


@pytest.fixture(scope="session")
def runtime(stack_env: dict[str, str]) -> Iterator[Runtime]:
    """This process's runtime against the stack, with Celery pointed at the stack's broker and queue."""
    runtime = bootstrap(settings_for(stack_env))
    compose(runtime.settings)
    declare_queue()
    yield runtime
    runtime.engine.dispose()


@pytest.fixture(scope="session")
def worker(stack_env: dict[str, str], runtime: Runtime) -> Iterator[Any]:  # noqa: ARG001
    with running_worker(stack_env) as process:
        yield process


@pytest.fixture
def engine(runtime: Runtime) -> Iterator[Engine]:
    """The stack's engine with empty pipeline tables, so every test starts from nothing."""
    _truncate(runtime.engine)
    clear_admin_tables(runtime.engine)
    yield runtime.engine


def _truncate(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in PIPELINE_TABLES:
            conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    return tmp_path / "events.jsonl"
