"""PostgreSQL pool: a connection idle long enough is pinged before use; a busy one is trusted."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from kernel import db
from tests.stack import fresh_database


@pytest.fixture
def pg_engine() -> Iterator[Engine]:
    with fresh_database() as url:
        if url is None:
            pytest.skip("the pool ping exists only on PostgreSQL (the CI's PostgreSQL pass runs this)")
        engine = db.make_engine(url, pool_size=1, max_overflow=0)
        yield engine
        engine.dispose()


def test_a_pinged_connection_can_serve_a_read_only_autocommit_checkout(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _backend_pid(pg_engine)
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)

    assert _backend_pid(db.read_only(pg_engine)) == first  # pinged, alive, reused in autocommit


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _kill(engine: Engine, pid: int) -> None:
    # Another engine, so the pooled connection under test stays in the pool.
    killer = db.make_engine(engine.url.render_as_string(hide_password=False))
    with killer.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    killer.dispose()


def test_a_dead_connection_idle_past_the_limit_is_replaced_before_use(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _backend_pid(pg_engine)
    _kill(pg_engine, first)
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)

    assert _backend_pid(pg_engine) != first  # no error: the ping found it dead and the pool reconnected


def test_a_connection_used_a_moment_ago_is_not_pinged_and_a_dead_one_fails_once(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _backend_pid(pg_engine)
    _kill(pg_engine, first)
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 3600.0)

    with pytest.raises(DBAPIError) as failure:
        _backend_pid(pg_engine)
    assert failure.value.connection_invalidated  # the pool is refreshed ...
    assert _backend_pid(pg_engine) != first  # ... so the next request succeeds
