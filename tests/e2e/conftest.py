from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.broker_stack import BrokerNode, broker_node, grip_origin, services_file
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


@pytest.fixture(scope="session")
def broker_stack_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One migrated stack with a worker for every broker test (metering tests use accounts of their own)."""
    env_dir = tmp_path_factory.mktemp("broker-stack")
    with migrated_stack(env_dir, _upgrade_by_command) as env, running_worker(env):
        yield {**env, "FANMETER_ALIVE_INTERVAL_SECONDS": "1", "FANMETER_BROKER_SHIP_INTERVAL_MS": "100"}


@pytest.fixture(scope="session")
def origin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with grip_origin(tmp_path_factory.mktemp("origin")) as url:
        yield url


@pytest.fixture(scope="session")
def broker(
    broker_stack_env: dict[str, str], origin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerNode]:
    """A `fanmeter broker` serving svc-a (Fanout on) and svc-off (Fanout off) in front of the gripcontrol origin."""
    config = services_file(tmp_path_factory.mktemp("config") / "services.json", origin_url)
    with broker_node(broker_stack_env, config, "e2e-main") as node:
        yield node


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Async tests run on asyncio (the loop the broker itself runs on)."""
    return "asyncio"
