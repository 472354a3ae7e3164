"""Reliable delivery on fanmeter's own terms: what a retry or a recovery costs the customer.

The client-visible rules are checked against Pushpin in test_broker_conformance.py; here a
broker node of its own, metering into the pipeline, shows that a long-poll retried by the
broker and a stream that recovered through its next link are each one connection (and a
request retried before anything was held is none), and that only the published items a
client was handed are delivered messages.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from tests.e2e.broker_metering import StreamClient, close_reasons, wait_for_usage
from tests.e2e.broker_stack import TOKEN, BrokerNode, broker_node, services_file

pytestmark = pytest.mark.anyio


def publish(node: BrokerNode, id: str, prev_id: str | None = None) -> None:
    item = {"channel": "m1", "id": id, "formats": {"http-stream": {"content": f"item {id}\n"}}}
    response = httpx.post(
        node.publish_url(), json={"items": [item | ({"prev-id": prev_id} if prev_id else {})]},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )  # fmt: skip
    assert response.status_code == 200, response.text


@contextmanager
def node_of_a_new_account(env: dict[str, str], origin_url: str, tmp: Path) -> Iterator[tuple[str, BrokerNode, str]]:
    """A broker node serving svc-a (at the base URL yielded) for an account of its own, so its usage
    is this test's alone."""
    account = f"acct-{uuid.uuid4().hex[:8]}"
    config = services_file(tmp / "services.json", origin_url, account=account)
    with broker_node(env, config, f"reliable-{account}") as node:
        yield account, node, f"{node.url}/s/svc-a"


async def watching_item_2(stack: AsyncExitStack, base: str, node: BrokerNode) -> tuple[httpx.AsyncClient, StreamClient]:
    """A client, and its stream on m1 that took item 2 (no prev-id): 2 is m1's last id on the node."""
    client = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
    watcher = StreamClient(client, f"{base}/stream?ch=m1")
    await watcher.open(stack)
    await asyncio.sleep(1.5)  # past the refresh of a channel new to the node
    await asyncio.to_thread(publish, node, "2")
    await watcher.receive(1)
    return client, watcher


async def test_a_retried_long_poll_and_a_recovered_stream_are_one_connection_each_billed_for_what_they_got(
    broker_stack_env: dict[str, str], origin_url: str, tmp_path: Path
) -> None:
    with node_of_a_new_account(broker_stack_env, origin_url, tmp_path) as (account, node, base):
        async with AsyncExitStack() as stack:
            client, watcher = await watching_item_2(stack, base, node)

            # Behind its channel when the origin answered: retried before anything was held, so the
            # client gets a plain response and there is no held connection to bill.
            stale = await client.get(f"{base}/rpoll?ch=m1&prev=1&timeout=20")
            assert (stale.status_code, stale.text) == (200, "recovered m1; last-id=1\n")
            # Held on a channel new to the node: asked again a second later, answered by the origin.
            poll = await client.get(f"{base}/rpoll?ch=m2&prev=1&timeout=20")
            assert (poll.status_code, poll.text) == (200, "recovered m2; last-id=1\n")

            stream = StreamClient(client, f"{base}/rstream?ch=m1&prev=1&now=3")
            await stream.open(stack)
            await asyncio.to_thread(publish, node, "3", "2")  # the stream expects 1: it recovers instead
            await stream.receive(1)
            await asyncio.to_thread(publish, node, "4", "3")
            await asyncio.wait_for(asyncio.gather(stream.receive(2), watcher.receive(3)), 15)
    assert stream.lines == ["recovered m1; last-id=1", "item 4"]
    assert watcher.lines == ["item 2", "item 3", "item 4"]
    expected = {
        "connection_minutes": 3,  # the watcher, the held long-poll and the stream: retries open nothing
        "messages_published": 3,
        "messages_delivered": 3 + 1,  # the stream was handed item 4 only; the long-poll none
        "bytes_out": watcher.bytes + len(poll.content) + stream.bytes,  # recovery answers are bytes out too
    }
    assert wait_for_usage(broker_stack_env, account, expected) == expected
    assert sorted(close_reasons(broker_stack_env, account)) == ["client disconnected"] * 2 + ["recovered"]


async def test_a_long_poll_whose_retry_is_answered_with_a_stream_is_streamed_as_the_same_connection(
    broker_stack_env: dict[str, str], origin_url: str, tmp_path: Path
) -> None:
    with node_of_a_new_account(broker_stack_env, origin_url, tmp_path) as (account, node, base):
        async with AsyncExitStack() as stack:
            client, watcher = await watching_item_2(stack, base, node)

            # The long-poll expects 1 after item 2 was published: retried with Grip-Last, and the
            # origin answers the retry with a stream hold expecting 2.
            stream = StreamClient(client, f"{base}/rpoll?ch=m1&prev=1&then=stream&now=2")
            await stream.open(stack)
            await asyncio.to_thread(publish, node, "3", "2")
            await asyncio.wait_for(asyncio.gather(stream.receive(1), watcher.receive(2)), 15)
    assert stream.lines == ["item 3"]
    expected = {
        "connection_minutes": 2,  # the watcher and the long-poll that became a stream
        "messages_published": 2,
        "messages_delivered": 2 + 1,
        "bytes_out": watcher.bytes + stream.bytes,
    }
    assert wait_for_usage(broker_stack_env, account, expected) == expected
    assert sorted(close_reasons(broker_stack_env, account)) == ["client disconnected"] * 2
