"""The faults tier: a fresh database per test, on the PostgreSQL and RabbitMQ it restarts."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from fanmeter import migrate
from tests.faults.harness import ensure_postgresql, ensure_rabbitmq, missing_servers
from tests.stack import stack_environment


@pytest.fixture(autouse=True)
def _real_servers() -> Iterator[None]:
    """Refuse loudly (an error, not a skip) where PostgreSQL and RabbitMQ are not configured."""
    reason = missing_servers()
    if reason:
        pytest.fail(reason, pytrace=False)
    yield
    ensure_postgresql()  # whatever a test did, leave the shared servers running
    ensure_rabbitmq()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a migrated database of this test's own, and queues of its own.

    Like tests/stack.py's, but with no pooled connection kept across the test: the server it was
    opened on is restarted in between.
    """
    server_url = os.environ["FANMETER_DATABASE_URL"]
    name = f"fanmeter_fault_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        yield {**stack_environment(tmp_path), "FANMETER_DATABASE_URL": url}
    finally:
        ensure_postgresql()
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
