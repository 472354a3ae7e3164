"""A stream hold's first body relayed as it arrives from the origin, not read whole first (issue 12).

The conformance suite checks it against Pushpin with a first part over Pushpin's 100,000-byte
buffer; here, fanmeter's own promises: a first part of a few bytes reaches the client at once, and a
body of many MiB passes with the broker's memory bounded (the origin's socket is not read while the
client is behind). What the client received is billed: tests/e2e/test_broker_metering.py.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest

from tests.e2e.broker_stack import TOKEN, BrokerNode

pytestmark = pytest.mark.anyio
MiB = 1024 * 1024


def resident_bytes(pid: int) -> int:
    """The process's resident memory now (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def test_a_first_part_of_a_few_bytes_reaches_the_client_before_the_origin_sends_the_rest(
    broker: BrokerNode,
) -> None:
    key = uuid.uuid4().hex
    url = f"{broker.url}/s/svc-a"
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream("GET", f"{url}/slowstream?ch=sr1-{key}&first=8&key={key}") as response,
    ):
        chunks = response.aiter_raw()
        async with asyncio.timeout(5):  # the origin holds the rest back for 20 s
            assert await anext(chunks) == b"aaaaaaa\n"
        assert (await client.get(f"{url}/release?key={key}")).text == "released\n"
        assert await anext(chunks) == b"rest\n"
        item = {"channel": f"sr1-{key}", "http-stream": {"content": "next\n"}}
        published = await client.post(broker.publish_url(), json={"items": [item]},
                                      headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
        assert published.status_code == 200
        assert await anext(chunks) == b"next\n"  # subscribed from the start: nothing to wait for


async def test_a_first_body_of_many_mib_passes_with_the_brokers_memory_bounded(broker: BrokerNode) -> None:
    size_mib = 48
    before = resident_bytes(broker.process.pid)
    async with (
        httpx.AsyncClient(timeout=60) as client,
        client.stream("GET", f"{broker.url}/s/svc-a/bigstream?ch=sr2&mib={size_mib}") as response,
    ):
        chunks = response.aiter_raw()
        got = 0
        while got < MiB:
            got += len(await anext(chunks))
        await asyncio.sleep(1.5)  # the client stops reading: a broker reading the origin whole would take it all now
        held = resident_bytes(broker.process.pid) - before
        async for chunk in chunks:
            got += len(chunk)
            if got >= size_mib * MiB + 4:
                break
    assert got == size_mib * MiB + len(b"end\n")
    assert held < 16 * MiB, f"the broker grew {held / MiB:.1f} MiB while its client was behind"
