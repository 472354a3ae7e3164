"""Two broker nodes sharing Redis pub/sub: a publish to either reaches the clients of both, and both meter."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from tests.e2e.broker_metering import open_clients, publish_round, receive_all, wait_for_usage
from tests.e2e.broker_stack import broker_node, services_file
from tests.e2e.redis_server import redis_server

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


async def test_a_publish_on_either_node_reaches_clients_on_both_and_both_nodes_meter(
    broker_stack_env: dict[str, str], origin_url: str, redis_url: str, tmp_path: Path
) -> None:
    account = f"acct-{uuid.uuid4().hex[:8]}"
    channel = f"both-{account}"
    config = services_file(tmp_path / "services.json", origin_url, account=account)
    redis = {"FANMETER_REDIS_URL": redis_url}
    with (
        broker_node(broker_stack_env, config, f"n1-{account}", redis) as one,
        broker_node(broker_stack_env, config, f"n2-{account}", redis) as two,
    ):
        async with AsyncExitStack() as stack:
            clients = await open_clients(stack, one, channel, 2, 1) + await open_clients(stack, two, channel, 1, 1)
            await asyncio.to_thread(publish_round, one, channel, 2, "from-one")
            await asyncio.to_thread(publish_round, two, channel, 1, "from-two")
            received = await receive_all(clients, 3)
    assert received == 5 * 3
    assert {line for c in clients for line in getattr(c, "lines", getattr(c, "messages", []))} == {
        "from-one-0", "from-one-1", "from-two-0",
    }  # fmt: skip
    expected = {"messages_published": 3, "messages_delivered": 15, "connection_minutes": 5}
    seen = wait_for_usage(broker_stack_env, account, expected)
    assert {k: seen[k] for k in expected} == expected
