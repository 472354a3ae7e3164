from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stack import fresh_database, run_cli, running_worker, stack_environment


@pytest.fixture(scope="module")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A migrated stack (by `fanmeter db upgrade`) with a worker process running."""
    env = stack_environment(tmp_path_factory.mktemp("e2e"))
    with fresh_database() as url:
        if url:
            env["FANMETER_DATABASE_URL"] = url
        upgraded = run_cli(env, "db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        with running_worker(env):
            yield env


@pytest.fixture
def data_dir(stack_env: dict[str, str]) -> Path:
    return Path(stack_env["FANMETER_DATA_DIR"])
