"""Broker behaviour beyond the Pushpin conformance suite (test_broker_conformance.py): routing, Fanout off,
keep-alives, grip-instruct holds, WebSocket meta and control messages, close codes, formats by transport."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import websockets
from gripcontrol import GripPubControl, HttpResponseFormat, HttpStreamFormat, WebSocketMessageFormat
from pubcontrol import Item

from tests.e2e.broker_stack import TOKEN, BrokerNode

pytestmark = pytest.mark.anyio


def publisher(broker: BrokerNode, service_id: str = "svc-a") -> GripPubControl:
    """gripcontrol pointed at the broker's publish API with the service's token (Bearer)."""
    return GripPubControl({"control_uri": f"{broker.url}/service/{service_id}", "key": TOKEN})


def publish(broker: BrokerNode, channel: str, *formats: object) -> None:
    pub = publisher(broker)
    pub.publish(channel, Item(list(formats)), blocking=True)
    pub.close()


def test_the_host_header_selects_the_service(broker: BrokerNode) -> None:
    response = httpx.get(f"{broker.url}/plain", headers={"Host": "svc-a.test"})
    assert response.text == "plain answer\n"


def test_an_unknown_host_is_refused_with_a_reason(broker: BrokerNode) -> None:
    response = httpx.get(f"{broker.url}/plain", headers={"Host": "nobody.test"})
    assert response.status_code == 404
    assert "No service is configured for host" in response.text


def test_a_service_without_fanout_is_not_served(broker: BrokerNode) -> None:
    response = httpx.get(f"{broker.url}/s/svc-off/plain")
    assert (response.status_code, response.text) == (403, "Fanout is not enabled for service svc-off\n")


async def test_a_stream_gets_keep_alive_content_when_idle(broker: BrokerNode) -> None:
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", f"{broker.url}/s/svc-a/stream?ch=k1&ka=1") as response,
    ):
        chunks = response.aiter_raw()
        assert await anext(chunks) == b"stream open\n"
        assert await anext(chunks) == b"ka\n"


async def _long_poll_until_published(broker: BrokerNode, path: str, channel: str) -> httpx.Response:
    """Publish until the held request answers: the hold begins a moment after the origin replied."""
    async with httpx.AsyncClient(timeout=10) as client:
        request = asyncio.ensure_future(client.get(f"{broker.url}/s/svc-a{path}"))
        while not request.done():
            fmt = HttpResponseFormat(code=201, headers={"X-Pub": "1"}, body="published body\n")
            await asyncio.to_thread(publish, broker, channel, fmt)
            await asyncio.wait({request}, timeout=0.2)
        return request.result()


async def test_a_long_poll_held_by_a_grip_instruct_body_is_answered_by_a_publish(broker: BrokerNode) -> None:
    response = await _long_poll_until_published(broker, "/instruct?ch=p2", "p2")
    assert response.text == "published body\n"


async def test_websocket_over_http_relays_messages_both_ways_and_publishes_reach_the_socket(broker: BrokerNode) -> None:
    ws_url = broker.url.replace("http://", "ws://") + "/s/svc-a/ws?ch=w1"
    async with websockets.connect(ws_url) as socket:
        assert await socket.recv() == "welcome"  # sent after the subscribe control message
        await socket.send("hello")
        assert await socket.recv() == "echo:hello"
        await socket.send("whoami")
        assert await socket.recv() == "user=alice"  # Set-Meta-User came back as Meta-User
        await asyncio.to_thread(publish, broker, "w1", WebSocketMessageFormat("pushed"))
        assert await socket.recv() == "pushed"
        await socket.send("unsub")
        assert await socket.recv() == "unsubscribed"
        await asyncio.to_thread(publish, broker, "w1", WebSocketMessageFormat("not for you"))
        await socket.send("ping-me")
        assert await socket.recv() == "echo:ping-me"


async def test_an_origin_close_and_a_published_close_end_the_socket_with_their_codes(broker: BrokerNode) -> None:
    ws_url = broker.url.replace("http://", "ws://") + "/s/svc-a/ws?ch=w2"
    async with websockets.connect(ws_url) as socket:
        assert await socket.recv() == "welcome"
        await socket.send("close")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
    async with websockets.connect(ws_url) as socket:
        assert await socket.recv() == "welcome"
        await asyncio.to_thread(publish, broker, "w2", WebSocketMessageFormat(action="close", code=4002))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4002


async def test_an_item_reaches_only_transports_that_have_a_format_in_it(broker: BrokerNode) -> None:
    ws_url = broker.url.replace("http://", "ws://") + "/s/svc-a/ws?ch=mix"
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", f"{broker.url}/s/svc-a/stream?ch=mix") as stream,
    ):
        chunks = stream.aiter_raw()
        assert await anext(chunks) == b"stream open\n"
        async with websockets.connect(ws_url) as socket:
            assert await socket.recv() == "welcome"
            await asyncio.to_thread(publish, broker, "mix", HttpStreamFormat("stream only\n"))
            await asyncio.to_thread(publish, broker, "mix", WebSocketMessageFormat("ws only"))
            assert await socket.recv() == "ws only"
            assert await anext(chunks) == b"stream only\n"
