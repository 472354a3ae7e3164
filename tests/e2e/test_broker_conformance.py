"""Conformance with Pushpin: the same scenarios run against Debian's `pushpin` and fanmeter's broker.

Each test runs once per target and asserts the same client-visible result for both: relayed
responses, Grip-Sig, HTTP-stream and SSE content, long-poll replacement and timeout,
WebSocket-over-HTTP message flow, and the publish API's answers. Both sit in front of the same
gripcontrol origin, and gripcontrol publishes to both.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import websockets
from gripcontrol import GripPubControl, HttpResponseFormat, HttpStreamFormat, WebSocketMessageFormat
from httpx_sse import aconnect_sse
from pubcontrol import Item

from tests.e2e.broker_stack import TOKEN, BrokerNode
from tests.e2e.pushpin import pushpin

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Target:
    name: str
    url: str  # a client's base URL for the service
    control: dict[str, str]  # gripcontrol config for publishing to it

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    @property
    def publish_url(self) -> str:
        return self.control["control_uri"] + "/publish/"

    @property
    def publish_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.control['key']}"} if "key" in self.control else {}

    def publish(self, channel: str, *formats: object) -> None:
        pub = GripPubControl(self.control)
        pub.publish(channel, Item(list(formats)), blocking=True)
        pub.close()


@pytest.fixture(scope="module")
def pushpin_target(origin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    if shutil.which("pushpin") is None:
        pytest.fail("Debian's pushpin is needed for the conformance suite: apt-get install -y pushpin (.ci/run does)")
    with pushpin(tmp_path_factory.mktemp("pushpin"), origin_url) as node:
        yield Target("pushpin", node.url, {"control_uri": node.control_uri})


@pytest.fixture(params=["fanmeter", "pushpin"])
def target(request: pytest.FixtureRequest) -> Target:
    if request.param == "pushpin":
        return request.getfixturevalue("pushpin_target")  # type: ignore[no-any-return]
    broker: BrokerNode = request.getfixturevalue("broker")
    return Target("fanmeter", f"{broker.url}/s/svc-a", {"control_uri": f"{broker.url}/service/svc-a", "key": TOKEN})


def no_grip_headers(response: httpx.Response) -> bool:
    return not any(k.lower().startswith("grip-") for k in response.headers)


def test_a_plain_response_is_relayed(target: Target) -> None:
    response = httpx.get(f"{target.url}/plain")
    assert (response.status_code, response.text, response.headers["x-origin"]) == (200, "plain answer\n", "yes")


def test_the_origin_validates_the_grip_sig(target: Target) -> None:
    assert httpx.get(f"{target.url}/sig").text == "signed\n"


async def test_http_stream_content_is_appended_and_a_close_ends_the_stream(target: Target) -> None:
    async with httpx.AsyncClient(timeout=10) as client, client.stream("GET", f"{target.url}/stream?ch=cs") as response:
        assert no_grip_headers(response)
        chunks = response.aiter_raw()
        assert await anext(chunks) == b"stream open\n"
        await asyncio.to_thread(target.publish, "cs", HttpStreamFormat("one\n"))
        assert await anext(chunks) == b"one\n"
        await asyncio.to_thread(target.publish, "cs", HttpStreamFormat("two\n"))
        assert await anext(chunks) == b"two\n"
        await asyncio.to_thread(target.publish, "cs", HttpStreamFormat(close=True))
        assert b"".join([c async for c in chunks]) == b""
    assert response.status_code == 200


async def test_sse_events_are_delivered(target: Target) -> None:
    async with (
        httpx.AsyncClient(timeout=10) as client,
        aconnect_sse(client, "GET", f"{target.url}/sse?ch=ce") as source,
    ):
        assert source.response.headers["content-type"].startswith("text/event-stream")
        events = source.aiter_sse()
        first = await anext(events)
        await asyncio.to_thread(target.publish, "ce", HttpStreamFormat('event: tick\ndata: {"n": 1}\n\n'))
        second = await anext(events)
    assert [(first.event, first.data), (second.event, json.loads(second.data))] == [
        ("open", "ready"),
        ("tick", {"n": 1}),
    ]


async def test_a_long_poll_is_replaced_by_the_first_published_response(target: Target) -> None:
    async with httpx.AsyncClient(timeout=20) as client:
        request = asyncio.ensure_future(client.get(f"{target.url}/poll?ch=cp"))
        while not request.done():  # the hold starts a moment after the origin answered: publish until it lands
            fmt = HttpResponseFormat(code=201, headers={"X-Pub": "1"}, body="published body\n")
            await asyncio.to_thread(target.publish, "cp", fmt)
            await asyncio.wait({request}, timeout=0.2)
        response = request.result()
    assert (response.status_code, response.text, response.headers["x-pub"]) == (201, "published body\n", "1")


def test_a_long_poll_times_out_with_the_origins_response(target: Target) -> None:
    response = httpx.get(f"{target.url}/poll?ch=never&timeout=1", timeout=30)
    assert (response.status_code, response.text) == (200, "timed out\n")
    assert no_grip_headers(response)


def test_a_grip_instruct_hold_times_out_with_the_instructed_response(target: Target) -> None:
    response = httpx.get(f"{target.url}/instruct?ch=never&timeout=1", timeout=30)
    assert (response.status_code, response.text) == (200, "instruct timed out\n")


async def test_websocket_over_http_message_flow(target: Target) -> None:
    async with websockets.connect(f"{target.ws_url}/ws?ch=cw") as socket:
        seen = [await socket.recv()]
        for text in ("hello", "whoami"):
            await socket.send(text)
            seen.append(await socket.recv())
        await asyncio.to_thread(target.publish, "cw", WebSocketMessageFormat("pushed"))
        seen.append(await socket.recv())
        await socket.send("close")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.recv()
    assert seen == ["welcome", "echo:hello", "user=alice", "pushed"]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001


@pytest.mark.parametrize(
    ("body", "status", "prefix"),
    [
        ({"items": [{"channel": "c", "formats": {"http-stream": {"content": "x"}}}]}, 200, "Published"),
        ({"items": [{"channel": "c", "http-stream": {"content": "x"}}]}, 200, "Published"),
        ({"items": []}, 200, "Published"),
        ({"items": [{"channel": "c", "formats": {"smoke-signal": {}}}]}, 200, "Published"),
        ({"items": [{"channel": "c"}]}, 400, "Invalid format: "),
        ({"items": [{"channel": "c", "http-stream": {}}]}, 400, "Invalid format: "),
    ],
)
def test_the_publish_api_answers_alike(target: Target, body: dict[str, object], status: int, prefix: str) -> None:
    response = httpx.post(target.publish_url, json=body, headers=target.publish_headers)
    assert response.status_code == status
    assert response.text.startswith(prefix)


def test_a_body_that_is_not_json_is_400(target: Target) -> None:
    assert httpx.post(target.publish_url, content=b"{nope", headers=target.publish_headers).status_code == 400
