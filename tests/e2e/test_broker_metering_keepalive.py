"""Bytes the broker sends on its own are billed as bandwidth, never as messages (DESIGN.md, "Bandwidth").

Keep-alives (``Grip-Keep-Alive`` on a stream, idle and ``mode=interval``; a WebSocket's
``keep-alive`` control message) and delayed WebSocket messages (``send-delayed``, sent by its timer
or by ``flush-delayed``) are bytes written to the end user: they count in ``bytes_out`` exactly as
the client received them. They are not published items, so ``messages_delivered`` counts only the
deliveries of what was published (README, "Keep-alive and delayed messages are bytes out, not
deliveries"). Each test bills an account of its own, on one broker node in front of the gripcontrol
origin, through the real pipeline.

A keep-alive written as a client goes away could be counted by the broker and never read, so each
client stops on a marker: a stream right after it received a keep-alive (the next is a second
away), a socket after keep-alives were turned off.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
import websockets

from tests.e2e.broker_metering import wait_for_usage
from tests.e2e.broker_stack import GRIP_KEY, TOKEN, BrokerNode, broker_node

pytestmark = pytest.mark.anyio

SERVICES = ("svc-idle", "svc-interval", "svc-socket", "svc-badtext")


@pytest.fixture(scope="module")
def accounts() -> dict[str, str]:
    """Each service's account: one per test, fresh for every run."""
    return {service: f"acct-{uuid.uuid4().hex[:8]}" for service in SERVICES}


@pytest.fixture(scope="module")
def node(broker_stack_env: dict[str, str], origin_url: str, accounts: dict[str, str],
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerNode]:  # fmt: skip
    config = tmp_path_factory.mktemp("keepalive") / "services.json"
    services = [
        {"service_id": s, "account_id": a, "origin": origin_url, "publish_tokens": [TOKEN], "grip_key": GRIP_KEY,
         "fanout_enabled": True}
        for s, a in accounts.items()
    ]  # fmt: skip
    config.write_text(json.dumps({"services": services}))
    with broker_node(broker_stack_env, config, f"keepalive-{uuid.uuid4().hex[:6]}") as started:
        yield started


async def publish(http: httpx.AsyncClient, node: BrokerNode, service: str, channel: str, text: str) -> None:
    formats = {"http-stream": {"content": f"{text}\n"}, "ws-message": {"content": text}}
    response = await http.post(node.publish_url(service), headers={"Authorization": f"Bearer {TOKEN}"},
                               json={"items": [{"channel": channel, "formats": formats}]})  # fmt: skip
    assert response.status_code == 200, response.text


class Stream:
    """A held stream's raw body as the client received it."""

    def __init__(self) -> None:
        self.body = b""

    def keep_alives(self) -> int:
        return self.body.count(b"ka\n")


async def hold_stream(http: httpx.AsyncClient, url: str, stream: Stream, stop: asyncio.Event) -> None:
    """Read the stream until ``stop`` is set, then leave right after the next keep-alive."""
    async with http.stream("GET", url) as response:
        async for chunk in response.aiter_raw():
            stream.body += chunk
            if stop.is_set() and stream.body.endswith(b"ka\n"):
                return


async def until(condition: Callable[[], bool], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert condition(), "not reached in time"


async def test_idle_keep_alives_on_a_quiet_stream_are_billed_as_bytes_out_and_not_as_messages(
    node: BrokerNode, accounts: dict[str, str], broker_stack_env: dict[str, str]
) -> None:
    stream, stop = Stream(), asyncio.Event()
    async with httpx.AsyncClient(timeout=30) as http:
        url = f"{node.url}/s/svc-idle/stream?ch=quiet&ka=1"
        held = asyncio.ensure_future(hold_stream(http, url, stream, stop))
        await until(lambda: stream.keep_alives() >= 2)  # quiet for 1 s, twice
        await publish(http, node, "svc-idle", "quiet", "the-item")
        await until(lambda: b"the-item\n" in stream.body)
        await until(lambda: stream.body.endswith(b"ka\n"))  # quiet again after the item
        stop.set()
        await asyncio.wait_for(held, 10)
    assert stream.body.startswith(b"stream open\n")
    assert stream.body.count(b"the-item\n") == 1 and stream.keep_alives() >= 3
    expected = {
        "messages_published": 1,
        "messages_delivered": 1,
        "connection_minutes": 1,
        "bytes_out": len(stream.body),
    }
    assert wait_for_usage(broker_stack_env, accounts["svc-idle"], expected) == expected


async def test_interval_keep_alives_on_a_busy_stream_are_billed_as_bytes_out_beside_the_deliveries(
    node: BrokerNode, accounts: dict[str, str], broker_stack_env: dict[str, str]
) -> None:
    stream, stop = Stream(), asyncio.Event()
    items = 8
    async with httpx.AsyncClient(timeout=30) as http:
        url = f"{node.url}/s/svc-interval/stream?ch=busy&ka=1&kamode=interval"
        held = asyncio.ensure_future(hold_stream(http, url, stream, stop))
        await until(lambda: stream.body.startswith(b"stream open\n"))
        for n in range(items):  # an item every 0.4 s: never quiet for the 1 s an idle keep-alive waits
            await publish(http, node, "svc-interval", "busy", f"busy-{n}")
            await until(lambda n=n: f"busy-{n}\n".encode() in stream.body)
            await asyncio.sleep(0.4)  # the traffic's pace under test, not a synchronisation
        stop.set()
        await asyncio.wait_for(held, 10)
    assert stream.keep_alives() >= 2
    assert sum(stream.body.count(f"busy-{n}\n".encode()) for n in range(items)) == items
    expected = {
        "messages_published": items,
        "messages_delivered": items,
        "connection_minutes": 1,
        "bytes_out": len(stream.body),
    }
    assert wait_for_usage(broker_stack_env, accounts["svc-interval"], expected) == expected


async def control(socket: websockets.ClientConnection, message: dict[str, object]) -> None:
    """Have the origin send ``message`` as a control message (tests/e2e/grip_origin.py, "control ...")."""
    await socket.send(f"control {json.dumps(message)}")


async def receive_until(socket: websockets.ClientConnection, got: list[str], marker: str) -> None:
    while not got or got[-1] != marker:
        got.append(str(await asyncio.wait_for(socket.recv(), 10)))


async def test_websocket_keep_alives_and_delayed_messages_are_billed_as_bytes_out_and_not_as_messages(
    node: BrokerNode, accounts: dict[str, str], broker_stack_env: dict[str, str]
) -> None:
    got: list[str] = []
    url = node.url.replace("http://", "ws://") + "/s/svc-socket/ws?ch=sock"
    async with websockets.connect(url) as socket, httpx.AsyncClient(timeout=30) as http:
        got.append(str(await socket.recv()))  # welcome: subscribed
        await control(socket, {"type": "keep-alive", "content": "sock-ka", "timeout": 1, "mode": "interval"})
        await receive_until(socket, got, "control sent")
        while got.count("sock-ka") < 2:
            got.append(str(await asyncio.wait_for(socket.recv(), 10)))
        await control(socket, {"type": "keep-alive"})  # no content: off, so nothing is in flight at the close
        await receive_until(socket, got, "control sent")
        await control(socket, {"type": "send-delayed", "content": "delayed-by-timer", "timeout": 1})
        await receive_until(socket, got, "control sent")
        await receive_until(socket, got, "delayed-by-timer")  # a second later
        await control(socket, {"type": "send-delayed", "content": "delayed-then-flushed", "timeout": 60})
        await receive_until(socket, got, "control sent")
        await control(socket, {"type": "flush-delayed"})
        await receive_until(socket, got, "control sent")
        if "delayed-then-flushed" not in got:
            await receive_until(socket, got, "delayed-then-flushed")
        await publish(http, node, "svc-socket", "sock", "the-socket-item")
        await receive_until(socket, got, "the-socket-item")
    assert got.count("sock-ka") >= 2
    assert got.count("delayed-by-timer") == got.count("delayed-then-flushed") == got.count("the-socket-item") == 1
    expected = {
        "messages_published": 1,
        "messages_delivered": 1,
        "connection_minutes": 1,
        "bytes_out": sum(len(message.encode()) for message in got),
    }
    assert wait_for_usage(broker_stack_env, accounts["svc-socket"], expected) == expected


async def test_a_text_message_that_is_not_utf8_is_billed_as_the_bytes_the_client_received(
    node: BrokerNode, accounts: dict[str, str], broker_stack_env: dict[str, str]
) -> None:
    """A text frame must be UTF-8, so bad sequences go out as U+FFFD (3 bytes for the 1 given)."""
    got: list[str] = []
    url = node.url.replace("http://", "ws://") + "/s/svc-badtext/ws?ch=bad"
    async with websockets.connect(url) as socket, httpx.AsyncClient(timeout=30) as http:
        got.append(str(await socket.recv()))  # welcome: subscribed
        item = {"type": "text", "content-bin": base64.b64encode(b"ok\xffbad").decode()}
        response = await http.post(node.publish_url("svc-badtext"), headers={"Authorization": f"Bearer {TOKEN}"},
                                   json={"items": [{"channel": "bad", "formats": {"ws-message": item}}]})  # fmt: skip
        assert response.status_code == 200, response.text
        got.append(str(await asyncio.wait_for(socket.recv(), 10)))
    assert got[-1] == "ok\ufffdbad"
    expected = {
        "messages_published": 1,
        "messages_delivered": 1,
        "connection_minutes": 1,
        "bytes_out": sum(len(message.encode()) for message in got),
    }
    assert wait_for_usage(broker_stack_env, accounts["svc-badtext"], expected) == expected
