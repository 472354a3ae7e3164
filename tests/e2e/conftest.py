from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stack import migrated_stack, run_cli, running_worker


@pytest.fixture(scope="module")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A migrated stack (by `fanmeter db upgrade`) with a worker process running."""
    with migrated_stack(tmp_path_factory.mktemp("e2e"), _upgrade_by_command) as env, running_worker(env):
        yield env


def _upgrade_by_command(env: dict[str, str]) -> None:
    upgraded = run_cli(env, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr


@pytest.fixture
def data_dir(stack_env: dict[str, str]) -> Path:
    return Path(stack_env["FANMETER_DATA_DIR"])
