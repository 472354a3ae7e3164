"""Properties of the hub's fan-out (docs/decisions.md, "Fan-out writes"): however publishes and turns
of the event loop interleave, and whatever the slice of holds woken per turn, every subscriber gets
every item exactly once and in order, unless its queue was full, and then the item is counted as
dropped, never lost silently."""

from __future__ import annotations

import asyncio
import json
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.fanout import hub as hub_module
from broker.fanout.hub import Hub
from broker.grip.publish import HttpStreamFormat, parse_publish_body
from broker.services.model import ServiceConfig
from broker.transports.connection import Connection

SVC = ServiceConfig("s1", "a1", "http://o", ("t",), "k", True)

# A step: publish this many items at once (one publish request), or let the loop turn this many times.
publish = st.tuples(st.just("publish"), st.integers(1, 4))
turn = st.tuples(st.just("turn"), st.integers(1, 3))
steps = st.lists(st.one_of(publish, turn), max_size=25)


@settings(max_examples=60, deadline=None)
@given(subscribers=st.integers(1, 12), wake_slice=st.integers(1, 5), queue_size=st.integers(1, 8), plan=steps)
def test_every_item_reaches_every_subscriber_once_in_order_or_is_counted_dropped(
    subscribers: int, wake_slice: int, queue_size: int, plan: list[tuple[str, int]]
) -> None:
    with mock.patch.object(hub_module, "WAKE_SLICE", wake_slice):
        received, dropped, published = asyncio.run(_run(subscribers, queue_size, plan))
    for got, lost in zip(received, dropped, strict=True):  # a hold left with queued items fails here too
        assert len(got) + lost == len(published)
        assert _is_ordered_subsequence(got, published)
        if lost == 0:
            assert got == published


async def _run(
    subscribers: int, queue_size: int, plan: list[tuple[str, int]]
) -> tuple[list[list[str]], list[int], list[str]]:
    hub = Hub()
    conns = [Connection(str(n), SVC, "http-stream", queue_size) for n in range(subscribers)]
    received: list[list[str]] = [[] for _ in conns]
    for conn in conns:
        hub.subscribe(conn, "c")
    holds = [asyncio.ensure_future(_hold(conn, got)) for conn, got in zip(conns, received, strict=True)]
    await asyncio.sleep(0)
    published: list[str] = []
    for action, n in plan:
        if action == "publish":
            contents = [str(len(published) + k) for k in range(n)]
            published += contents
            hub.deliver("s1", parse_publish_body(json.dumps({"items": [
                {"channel": "c", "formats": {"http-stream": {"content": c}}} for c in contents
            ]}).encode()))  # fmt: skip
        else:
            for _ in range(n):
                await asyncio.sleep(0)
    for _ in range(100):  # let every hold take what is still queued; a hold never woken keeps its items
        if not any(conn.queued for conn in conns):
            break
        await asyncio.sleep(0)
    for hold in holds:
        hold.cancel()
    return received, [conn.dropped for conn in conns], published


async def _hold(conn: Connection, got: list[str]) -> None:
    """A stream hold's delivery loop, writing to a list."""
    while True:
        for delivery in await conn.next_batch():
            assert isinstance(delivery.format, HttpStreamFormat)
            got.append(delivery.format.content.decode())


def _is_ordered_subsequence(part: list[str], whole: list[str]) -> bool:
    remaining = iter(whole)
    return all(any(x == y for y in remaining) for x in part)
