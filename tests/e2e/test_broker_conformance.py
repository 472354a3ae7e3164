"""Conformance with Pushpin: the same scenarios run against Debian's `pushpin` and fanmeter's broker.

Each test runs once per target and asserts the same client-visible result for both: relayed
responses, Grip-Sig, HTTP-stream and SSE content, long-poll replacement and timeout,
WebSocket-over-HTTP message flow, the publish API's answers, and reliable delivery (prev-id
retries and recoveries, Grip-Last, next links, prev-id ordering, duplicate ids), and what neither
lets a hostile client do (issue 15: speak for the broker to the origin, send heads beyond the
limits, get framing headers of a published response, use dot-segments). Both sit in front of the
same gripcontrol origin, and gripcontrol publishes to both.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest
import websockets
from gripcontrol import GripPubControl, HttpResponseFormat, HttpStreamFormat, WebSocketMessageFormat
from httpx_sse import aconnect_sse
from pubcontrol import Item

from broker.app import remove_dot_segments
from tests.e2e.broker_raw import MiB, big_header, many_headers, raw_exchange, raw_get
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


def test_the_path_reaches_the_origin_as_the_client_encoded_it(target: Target) -> None:
    response = httpx.get(f"{target.url}/raw/caf%C3%A9%20au%2Flait?q=a%20b")
    assert (response.status_code, response.text) == (200, "/raw/caf%C3%A9%20au%2Flait?q=a%20b")


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
        ({"items": [{"channel": "c", "http-stream": {"action": "refresh"}}]}, 400, "Invalid format: "),
        ({"items": [{"channel": "c", "ws-message": {"action": "refresh"}}]}, 400, "Invalid format: "),
        ({"items": [{"channel": "c", "ws-message": {"type": "smoke", "content": "x"}}]}, 400, "Invalid format: "),
    ],
)
def test_the_publish_api_answers_alike(target: Target, body: dict[str, object], status: int, prefix: str) -> None:
    response = httpx.post(target.publish_url, json=body, headers=target.publish_headers)
    assert response.status_code == status
    assert response.text.startswith(prefix)


def test_a_body_that_is_not_json_is_400(target: Target) -> None:
    assert httpx.post(target.publish_url, content=b"{nope", headers=target.publish_headers).status_code == 400


# Reliable delivery (Pushpin's prev-id, Grip-Link, Grip-Last and sequencing; docs/decisions.md).


def publish_raw(target: Target, *items: dict[str, object]) -> None:
    """Publish items as JSON (for fields gripcontrol does not send, such as no-seq)."""
    response = httpx.post(target.publish_url, json={"items": list(items)}, headers=target.publish_headers)
    assert response.status_code == 200, response.text


def stream_item(channel: str, content: str, id: str, prev_id: str | None = None, **extra: object) -> dict[str, object]:
    ids = {"id": id, **({"prev-id": prev_id} if prev_id is not None else {})}
    return {"channel": channel, **ids, "formats": {"http-stream": {"content": content}}, **extra}


async def read_until(chunks: AsyncIterator[bytes], expected: bytes, timeout_s: float = 15) -> bytes:
    """Bytes from the stream until they are as long as ``expected`` (then compared by the caller)."""
    got = b""
    async with asyncio.timeout(timeout_s):
        while len(got) < len(expected):
            got += await anext(chunks)
    return got


async def read_to_end(chunks: AsyncIterator[bytes], timeout_s: float = 15) -> bytes:
    """What is left of the stream until its body ends (a stream that does not end fails the wait)."""
    got = b""
    async with asyncio.timeout(timeout_s):
        async for chunk in chunks:
            got += chunk
    return got


async def held_stream(stack: AsyncExitStack, target: Target, path: str, first: bytes) -> AsyncGenerator[bytes]:
    client = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
    response = await stack.enter_async_context(client.stream("GET", f"{target.url}{path}"))
    chunks = response.aiter_raw()
    stack.push_async_callback(chunks.aclose)  # also keeps the stream open while the caller ignores it
    assert await read_until(chunks, first) == first
    return chunks


async def subscribed(stack: AsyncExitStack, target: Target, channel: str) -> AsyncGenerator[bytes]:
    """A plain stream holding ``channel``, past the refresh of a channel new to the broker (1 s)."""
    watcher = await held_stream(stack, target, f"/stream?ch={channel}", b"stream open\n")
    await asyncio.sleep(1.5)
    return watcher


async def publish_until_answered(target: Target, request: asyncio.Future[httpx.Response], channel: str, id: str,
                                 prev_id: str, body: str, poll_s: float) -> httpx.Response:  # fmt: skip
    """Publish an ``http-response`` item with ``prev_id`` until a held long-poll answers: once the hold is
    in place one lands on it. Each attempt gets a new id (``<id>-<n>``): an id published again is dropped."""
    for n in itertools.count():
        item = {"channel": channel, "id": f"{id}-{n}", "prev-id": prev_id, "http-response": {"body": body}}
        await asyncio.to_thread(publish_raw, target, item)
        if (await asyncio.wait({request}, timeout=poll_s))[0]:
            break
    return request.result()


async def test_a_long_poll_whose_prev_id_is_behind_its_channel_is_retried_with_grip_last(target: Target) -> None:
    async with AsyncExitStack() as stack:
        watcher = await subscribed(stack, target, "rl1")
        await asyncio.to_thread(publish_raw, target, stream_item("rl1", "two\n", "2"))
        assert await read_until(watcher, b"two\n") == b"two\n"  # 2 is now the channel's last id
        async with httpx.AsyncClient(timeout=30) as client:
            retried = await client.get(f"{target.url}/rpoll?ch=rl1&prev=1&timeout=20")
            held = await client.get(f"{target.url}/rpoll?ch=rl1&prev=1&timeout=1")  # the last id was forgotten
    assert (retried.status_code, retried.text) == (200, "recovered rl1; last-id=1\n")
    assert (held.status_code, held.text) == (200, "timed out\n")


async def test_a_long_poll_whose_retry_is_answered_with_a_stream_hold_becomes_that_stream(target: Target) -> None:
    async with AsyncExitStack() as stack:
        watcher = await subscribed(stack, target, "rl5")
        await asyncio.to_thread(publish_raw, target, stream_item("rl5", "two\n", "2"))
        assert await read_until(watcher, b"two\n") == b"two\n"  # 2 is now the channel's last id
        chunks = await held_stream(stack, target, "/rpoll?ch=rl5&prev=1&then=stream&now=2", b"stream open\n")
        await asyncio.to_thread(publish_raw, target, stream_item("rl5", "three\n", "3", "2"))
        assert await read_until(chunks, b"three\n") == b"three\n"


async def test_a_long_poll_is_retried_when_a_published_item_does_not_follow_its_prev_id(target: Target) -> None:
    async with AsyncExitStack() as stack, httpx.AsyncClient(timeout=30) as client:
        await subscribed(stack, target, "rl2")
        request = asyncio.ensure_future(client.get(f"{target.url}/rpoll?ch=rl2&prev=1&timeout=20"))
        response = await publish_until_answered(target, request, "rl2", "3", "2", "three\n", poll_s=0.2)
    assert (response.status_code, response.text) == (200, "recovered rl2; last-id=1\n")


async def test_a_long_poll_takes_a_published_item_that_follows_its_prev_id(target: Target) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        request = asyncio.ensure_future(client.get(f"{target.url}/rpoll?ch=rl3&prev=1&timeout=20"))
        # within the second before the new channel's refresh
        response = await publish_until_answered(target, request, "rl3", "2", "1", "two\n", poll_s=0.1)
    assert (response.status_code, response.text) == (200, "two\n")


async def test_holds_on_a_channel_new_to_the_broker_ask_the_origin_again_a_second_later(target: Target) -> None:
    async with AsyncExitStack() as stack, httpx.AsyncClient(timeout=30) as client:
        started = time.monotonic()
        poll = await client.get(f"{target.url}/rpoll?ch=rl4&prev=1&timeout=20")
        assert time.monotonic() - started < 10  # not the 20 s timeout
        chunks = await held_stream(stack, target, "/rstream?ch=rs5&prev=1&now=1", b"stream open\n")
        recovered = b"recovered rs5; last-id=1\n"
        assert await read_until(chunks, recovered) == recovered
    assert (poll.status_code, poll.text) == (200, "recovered rl4; last-id=1\n")


async def test_a_stream_that_misses_an_item_recovers_through_its_next_link(target: Target) -> None:
    async with AsyncExitStack() as stack:
        await subscribed(stack, target, "rs1")
        chunks = await held_stream(stack, target, "/rstream?ch=rs1&prev=1&now=3", b"stream open\n")
        await asyncio.to_thread(publish_raw, target, stream_item("rs1", "three\n", "3", "2"))  # 2 never came
        recovered = b"recovered rs1; last-id=1\n"
        assert await read_until(chunks, recovered) == recovered  # "three" itself is not sent
        await asyncio.to_thread(publish_raw, target, stream_item("rs1", "four\n", "4", "3"))
        assert await read_until(chunks, b"four\n") == b"four\n"


async def test_a_stream_whose_first_hold_is_behind_its_channel_recovers_at_once(target: Target) -> None:
    async with AsyncExitStack() as stack:
        watcher = await subscribed(stack, target, "rs2")
        await asyncio.to_thread(publish_raw, target, stream_item("rs2", "five\n", "5"))
        assert await read_until(watcher, b"five\n") == b"five\n"
        chunks = await held_stream(stack, target, "/rstream?ch=rs2&prev=4&now=5", b"stream open\n")
        recovered = b"recovered rs2; last-id=4\n"
        assert await read_until(chunks, recovered) == recovered


async def test_a_stream_quiet_for_its_next_links_timeout_fetches_the_link(target: Target) -> None:
    async with AsyncExitStack() as stack:
        await subscribed(stack, target, "rs6")
        chunks = await held_stream(stack, target, "/rstream?ch=rs6&prev=1&now=1&linktimeout=2", b"stream open\n")
        started = time.monotonic()
        recovered = b"recovered rs6; last-id=1\n"
        assert await read_until(chunks, recovered) == recovered
    assert time.monotonic() - started >= 1.5  # not before the link's timeout


async def test_a_recovery_answer_may_page_through_next_links_and_end_the_stream(target: Target) -> None:
    async with AsyncExitStack() as stack:
        await subscribed(stack, target, "rs3")
        chunks = await held_stream(stack, target, "/rstream?ch=rs3&prev=1&pages=2&end=1", b"stream open\n")
        await asyncio.to_thread(publish_raw, target, stream_item("rs3", "nine\n", "9", "8"))
        rest = b"".join([chunk async for chunk in chunks])  # the stream ends after the last page
    assert rest == b"page 1\nrecovered rs3; last-id=1\n"


async def test_a_stream_hold_naming_a_prev_id_without_a_next_link_ends_after_its_first_body(target: Target) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(f"{target.url}/rstream?ch=rs4&prev=1&nolink=1")
    assert (response.status_code, response.text) == (200, "stream open\n")


async def test_items_published_out_of_order_reach_a_stream_in_prev_id_order(target: Target) -> None:
    async with AsyncExitStack() as stack:
        chunks = await held_stream(stack, target, "/stream?ch=sq1", b"stream open\n")
        await asyncio.to_thread(publish_raw, target, stream_item("sq1", "1\n", "1"))
        assert await read_until(chunks, b"1\n") == b"1\n"
        await asyncio.to_thread(publish_raw, target, stream_item("sq1", "3\n", "3", "2"))  # waits for 2
        await asyncio.to_thread(publish_raw, target, stream_item("sq1", "2\n", "2", "1"))
        await asyncio.to_thread(publish_raw, target, stream_item("sq1", "2\n", "2", "1"))  # a duplicate id
        await asyncio.to_thread(publish_raw, target, stream_item("sq1", "4\n", "4", "3"))
        assert await read_until(chunks, b"2\n3\n4\n") == b"2\n3\n4\n"


async def test_an_item_whose_predecessor_never_comes_is_sent_after_the_wait_unless_no_seq(target: Target) -> None:
    async with AsyncExitStack() as stack:
        chunks = await held_stream(stack, target, "/stream?ch=sq2", b"stream open\n")
        await asyncio.to_thread(publish_raw, target, stream_item("sq2", "1\n", "1"))
        assert await read_until(chunks, b"1\n") == b"1\n"
        await asyncio.to_thread(publish_raw, target, stream_item("sq2", "5\n", "5", "4", **{"no-seq": True}))
        assert await read_until(chunks, b"5\n", timeout_s=3) == b"5\n"  # no-seq: at once
        started = time.monotonic()
        await asyncio.to_thread(publish_raw, target, stream_item("sq2", "9\n", "9", "8"))
        assert await read_until(chunks, b"9\n") == b"9\n"
    assert time.monotonic() - started >= 4  # held for the message wait (5 s), then sent anyway


# Hostile clients (issue 15): what neither broker lets through. Pushpin's own answers where they differ
# from fanmeter's stricter ones are in docs/security.md.


def test_a_clients_grip_headers_never_reach_the_origin(target: Target) -> None:
    forged = {"Grip-Sig": "forged", "Grip-Last": "news; last-id=1", "Grip-Anything": "forged"}
    seen = httpx.get(f"{target.url}/headers", headers=forged).json()
    names = [name for name, _ in seen]
    assert names.count("grip-sig") == 1 and dict(seen)["grip-sig"] != "forged"
    assert "grip-last" not in names and "grip-anything" not in names


async def test_a_websocket_clients_connection_id_and_meta_headers_never_reach_the_origin(target: Target) -> None:
    forged = {"Connection-Id": "forged", "Meta-Role": "admin", "Meta-User": "mallory"}
    async with websockets.connect(f"{target.ws_url}/ws?ch=forged", additional_headers=forged) as socket:
        assert await socket.recv() == "welcome"
        await socket.send("headers")
        seen = json.loads(await socket.recv())
    assert [name for name, _ in seen] == ["connection-id", "meta-user"]
    assert seen[0][1] != "forged" and seen[1][1] == "alice"  # the broker's id; the origin's own meta


def test_a_plain_request_claiming_to_be_websocket_events_is_403(target: Target) -> None:
    headers = {"Content-Type": "application/websocket-events"}
    response = httpx.post(f"{target.url}/ws", content=b"OPEN\r\n", headers=headers)
    assert (response.status_code, response.text) == (403, "Client not allowed to send WebSocket events directly.\n")


def _port_and_path(target: Target, path: str) -> tuple[int, str]:
    parts = urlsplit(target.url)
    return parts.port or 80, parts.path + path


@pytest.mark.parametrize("attack", ["20,000 headers", "a 4 MB header"])
def test_a_request_head_beyond_the_limits_is_refused_and_the_next_client_served(target: Target, attack: str) -> None:
    port, path = _port_and_path(target, "/plain")
    parts = many_headers(20_000, path) if attack == "20,000 headers" else big_header(4 * MiB, path)
    refused = raw_exchange(port, parts)
    assert refused.status is None or refused.status >= 400, refused  # Pushpin closes; fanmeter answers 431
    assert httpx.get(f"{target.url}/plain").status_code == 200


def test_a_request_head_within_the_limits_is_served(target: Target) -> None:
    headers = {f"X-H{i}": "v" for i in range(50)} | {"X-Big": "a" * 6_000}  # within Pushpin's 64 and 8 KiB
    assert httpx.get(f"{target.url}/plain", headers=headers).status_code == 200


async def test_framing_and_grip_headers_of_a_published_response_never_reach_the_client(target: Target) -> None:
    dropped = {"Content-Length": "99", "Transfer-Encoding": "chunked", "Connection": "close", "Grip-Hold": "stream"}
    async with httpx.AsyncClient(timeout=20) as client:
        request = asyncio.ensure_future(client.get(f"{target.url}/poll?ch=hdrs"))
        while not request.done():
            fmt = HttpResponseFormat(headers={**dropped, "X-Kept": "yes"}, body="published\n")
            await asyncio.to_thread(target.publish, "hdrs", fmt)
            await asyncio.wait({request}, timeout=0.2)
        response = request.result()
    assert (response.status_code, response.text, response.headers["x-kept"]) == (200, "published\n", "yes")
    assert response.headers.get_list("content-length") == ["10"]
    assert not {"transfer-encoding", "connection", "grip-hold"} & set(response.headers.keys())


def resolved(path: str) -> str:
    """A path as an origin server resolves it (RFC 3986 dot-segments, also percent-encoded)."""
    return remove_dot_segments(path.replace("%2e", ".").replace("%2E", "."))


@pytest.mark.parametrize(
    ("path", "seen"), [("/raw/a/../b", "/raw/b"), ("/raw/a/%2e%2e/b", "/raw/b"), ("/raw/./c/.", "/raw/c/")]
)
def test_dot_segments_reach_the_origin_as_the_path_they_resolve_to(target: Target, path: str, seen: str) -> None:
    """Pushpin forwards them as written (it has no base path to escape); fanmeter removes them first."""
    status, body = raw_get(*_port_and_path(target, path))
    assert (status, resolved(body.decode())) == (200, seen)


# GRIP completeness (issue 12; docs/decisions.md, "GRIP completeness").


@pytest.mark.parametrize(
    ("status", "code", "body"),
    [("404", 404, "status body\n"), ("404 Nothing To See Here", 404, "status body\n"), ("304", 304, ""),
     ("299", 299, "status body\n")],
)  # fmt: skip
def test_grip_status_sets_the_status_of_a_relayed_response(target: Target, status: str, code: int, body: str) -> None:
    response = httpx.get(f"{target.url}/status", params={"status": status})
    assert (response.status_code, response.text) == (code, body)
    assert no_grip_headers(response)


def test_grip_status_sets_the_status_of_a_held_responses_timeout(target: Target) -> None:
    response = httpx.get(f"{target.url}/status", params={"status": "503", "hold": "1", "ch": "gs1"}, timeout=30)
    assert (response.status_code, response.text) == (503, "status body\n")


def test_an_invalid_grip_status_is_a_bad_gateway(target: Target) -> None:
    assert httpx.get(f"{target.url}/status", params={"status": "abc"}).status_code == 502


def test_an_unknown_grip_header_is_ignored(target: Target) -> None:
    response = httpx.get(f"{target.url}/status", params={"status": "200", "unknown": "1"})
    assert (response.status_code, response.text) == (200, "status body\n")
    assert no_grip_headers(response)


async def test_a_set_meta_control_message_keeps_the_socket_and_is_not_sent_to_the_origin(target: Target) -> None:
    """Pushpin keeps set-meta's meta for subscription filters; the origin gets its own Set-Meta-* back as Meta-*."""
    async with websockets.connect(f"{target.ws_url}/ws?ch=sm1") as socket:
        assert await socket.recv() == "welcome"
        for command in ("setmeta role=admin", "setmeta user"):  # set one, remove one
            await socket.send(command)
            assert await socket.recv() == "meta set"
        await socket.send("headers")
        seen = json.loads(await socket.recv())
        await socket.send("hello")
        assert await socket.recv() == "echo:hello"  # still open
    assert sorted(name for name, _ in seen) == ["connection-id", "meta-user"]
    assert dict(seen)["meta-user"] == "alice"


@pytest.mark.parametrize(
    "control",
    ['{"type": "dance"}', "{not json", '["subscribe"]', '{"type": "subscribe"}', '{"type": 7}',
     '{"type": "set-meta"}', '{"type": "keep-alive", "timeout": -1}'],
)  # fmt: skip
async def test_an_unknown_or_malformed_control_message_is_ignored(target: Target, control: str) -> None:
    async with websockets.connect(f"{target.ws_url}/ws?ch=uc1") as socket:
        assert await socket.recv() == "welcome"
        await socket.send(f"control {control}")
        assert await socket.recv() == "control sent"
        await socket.send("hello")
        assert await socket.recv() == "echo:hello"


# Subscription filters and item meta (Pushpin's skip-self, skip-users, require-sub, var-subst).


def ws_item(channel: str, content: str, **meta: str) -> dict[str, object]:
    return {"channel": channel, "formats": {"ws-message": {"content": content}}, **({"meta": meta} if meta else {})}


async def filtered_socket(stack: AsyncExitStack, target: Target, query: str) -> websockets.ClientConnection:
    socket = await stack.enter_async_context(websockets.connect(f"{target.ws_url}/ws?{query}"))
    assert await socket.recv() == "welcome"
    await socket.send("whoami")  # a round trip: the subscription (and its filters) are in place after it
    assert str(await socket.recv()).startswith("user=")
    return socket


async def received_until(socket: websockets.ClientConnection, marker: str) -> list[str]:
    got: list[str] = []
    async with asyncio.timeout(15):
        while not got or got[-1] != marker:
            got.append(str(await socket.recv()))
    return got


async def test_skip_self_drops_what_the_subscriber_itself_sent(target: Target) -> None:
    async with AsyncExitStack() as stack:
        alice = await filtered_socket(stack, target, "ch=f1&filters=skip-self&user=alice")
        bob = await filtered_socket(stack, target, "ch=f1&filters=skip-self&user=bob")
        plain = await filtered_socket(stack, target, "ch=f1&user=alice")  # no filter: gets everything
        await asyncio.to_thread(publish_raw, target, ws_item("f1", "from alice", sender="alice"), ws_item("f1", "end"))
        got = [await received_until(socket, "end") for socket in (alice, bob, plain)]
    assert got == [["end"], ["from alice", "end"], ["from alice", "end"]]


async def test_skip_users_drops_what_names_the_subscriber(target: Target) -> None:
    async with AsyncExitStack() as stack:
        alice = await filtered_socket(stack, target, "ch=f2&filters=skip-users&user=alice")
        bob = await filtered_socket(stack, target, "ch=f2&filters=skip-users&user=bob")
        items = [ws_item("f2", "not alice", skip_users="carol, alice"), ws_item("f2", "end")]
        await asyncio.to_thread(publish_raw, target, *items)
        got = [await received_until(socket, "end") for socket in (alice, bob)]
    assert got == [["end"], ["not alice", "end"]]


async def test_require_sub_on_a_websocket_drops_what_needs_a_channel_it_does_not_hold(target: Target) -> None:
    """Pushpin 1.36 also drops what needs a channel the socket does hold (its WebSocket filters see no
    channels; later Pushpin fixed it): fanmeter sends that (docs/decisions.md, "GRIP completeness")."""
    async with AsyncExitStack() as stack:
        alice = await filtered_socket(stack, target, "ch=f6&filters=require-sub&also=vip6")
        items = [ws_item("f6", "other", require_sub="nope"), ws_item("f6", "end")]
        await asyncio.to_thread(publish_raw, target, *items)
        got = await received_until(alice, "end")
    assert got == ["end"]


async def test_require_sub_drops_what_needs_a_channel_the_stream_does_not_hold(target: Target) -> None:
    async with AsyncExitStack() as stack:
        path = "/fstream?ch=f5&filters=require-sub&also=vip5"
        chunks = await held_stream(stack, target, path, b"stream open\n")
        await asyncio.sleep(0.5)
        items = [{"channel": "f5", "formats": {"http-stream": {"content": f"{c}\n"}}, "meta": {"require_sub": c}}
                 for c in ("nope5", "vip5")]  # fmt: skip
        await asyncio.to_thread(publish_raw, target, *items)
        assert await read_until(chunks, b"vip5\n") == b"vip5\n"


async def test_var_subst_puts_the_subscribers_meta_in_the_content(target: Target) -> None:
    async with AsyncExitStack() as stack:
        bob = await filtered_socket(stack, target, "ch=f3&filters=var-subst&user=bob")
        items = [ws_item("f3", "hi %(user)s, 100%%"), ws_item("f3", "no %(such)s"), ws_item("f3", "end")]
        await asyncio.to_thread(publish_raw, target, *items)
        got = await received_until(bob, "end")
    assert got == ["hi bob, 100%", "end"]


async def test_a_grip_channel_filter_and_grip_set_meta_filter_an_http_stream(target: Target) -> None:
    async with AsyncExitStack() as stack:
        chunks = await held_stream(stack, target, "/fstream?ch=f4&filters=skip-self&user=alice", b"stream open\n")
        await asyncio.sleep(0.5)
        items = [{"channel": "f4", "formats": {"http-stream": {"content": f"{s}\n"}}, "meta": {"sender": s}}
                 for s in ("alice", "bob")]  # fmt: skip
        await asyncio.to_thread(publish_raw, target, *items)
        assert await read_until(chunks, b"bob\n") == b"bob\n"


async def test_an_item_a_filter_drops_still_moves_a_streams_prev_id_on(target: Target) -> None:
    """Pushpin moves a hold's prev-id to the item's id before its filters run: the next item follows."""
    async with AsyncExitStack() as stack:
        await subscribed(stack, target, "f7")  # the channel is not new: no refresh fetches the next link
        chunks = await held_stream(stack, target, "/fstream?ch=f7&prev=1&filters=skip-self&user=alice",
                                   b"stream open\n")  # fmt: skip
        items = [stream_item("f7", f"{sender}-{n}\n", str(n), str(n - 1), meta={"sender": sender})
                 for n, sender in ((2, "alice"), (3, "bob"), (4, "alice"), (5, "carol"))]  # fmt: skip
        await asyncio.to_thread(publish_raw, target, *items)
        assert await read_until(chunks, b"bob-3\ncarol-5\n") == b"bob-3\ncarol-5\n"  # no recovery in between


async def test_an_item_a_filter_drops_still_moves_a_long_polls_prev_id_on(target: Target) -> None:
    async with AsyncExitStack() as stack, httpx.AsyncClient(timeout=30) as client:
        await subscribed(stack, target, "f8")
        request = asyncio.ensure_future(client.get(f"{target.url}/rpoll?ch=f8&prev=1&user=alice&timeout=20"))
        await asyncio.sleep(1)  # the hold is in place
        items = [{"channel": "f8", "id": str(n), "prev-id": str(n - 1), "meta": {"sender": who},
                  "http-response": {"body": f"{who}-{n}\n"}} for n, who in ((2, "alice"), (3, "bob"))]  # fmt: skip
        await asyncio.to_thread(publish_raw, target, *items)
        response = await request
    assert (response.status_code, response.text) == (200, "bob-3\n")  # not a retry with Grip-Last


@pytest.mark.parametrize(
    ("encoding", "first", "ids"), [("", b"first", (b"2", b"3")), ("hex", b"6669727374", (b"32", b"33"))]
)
async def test_build_id_renders_the_streams_prev_id_into_its_content(target: Target, encoding: str, first: bytes,
                                                                      ids: tuple[bytes, bytes]) -> None:  # fmt: skip
    """``%I`` is the id rendered from the hold's ``id_format`` meta with the channels' prev-ids (its own channel
    at the item's id); the origin's first body is rendered too (no prev-ids there: a literal ``%(first)I``)."""
    channel = f"bi-{encoding or 'plain'}"
    async with AsyncExitStack() as stack:
        await subscribed(stack, target, channel)  # the channel is not new: no refresh fetches the next link
        opened = b"stream open " + first + b"\n"
        chunks = await held_stream(stack, target, f"/bstream?ch={channel}&prev=1&enc={encoding}", opened)
        items = [stream_item(channel, "id %I\n", "2", "1"), stream_item(channel, "then %I, 100%%\n", "3", "2")]
        await asyncio.to_thread(publish_raw, target, *items)
        expected = b"id " + ids[0] + b"\nthen " + ids[1] + b", 100%\n"
        assert await read_until(chunks, expected) == expected


async def test_content_build_id_cannot_render_ends_the_stream(target: Target) -> None:
    """Pushpin 1.36 ends an HTTP stream on a filter error: what came before is sent, then the body ends."""
    async with AsyncExitStack() as stack:
        await subscribed(stack, target, "bi-end")  # the channel is not new: no refresh fetches the next link
        chunks = await held_stream(stack, target, "/bstream?ch=bi-end&prev=1", b"stream open first\n")
        items = [stream_item("bi-end", content, str(n), str(n - 1))
                 for n, content in ((2, "id %I\n"), (3, "bad %(x)s\n"), (4, "after %I\n"))]  # fmt: skip
        await asyncio.to_thread(publish_raw, target, *items)
        assert await read_until(chunks, b"id 2\n") == b"id 2\n"
        assert await read_to_end(chunks) == b""  # the stream is over: nothing after the item it could not render


async def test_content_var_subst_cannot_render_answers_a_long_poll_502(target: Target) -> None:
    async with AsyncExitStack() as stack, httpx.AsyncClient(timeout=30) as client:
        await subscribed(stack, target, "fp1")
        request = asyncio.ensure_future(client.get(f"{target.url}/fpoll?ch=fp1&filters=var-subst&user=alice"))
        await asyncio.sleep(1)  # the hold is in place
        await asyncio.to_thread(publish_raw, target, {"channel": "fp1", "http-response": {"body": "to %(x)s\n"}})
        response = await request
    assert response.status_code == 502 and response.headers["content-type"].startswith("text/plain")


# Publish actions (hint, refresh, close with a code and reason) and ws-message types.


async def test_ws_message_types_and_a_close_with_its_code_and_reason(target: Target) -> None:
    async with websockets.connect(f"{target.ws_url}/ws?ch=pa1") as socket:
        assert await socket.recv() == "welcome"
        await socket.send("whoami")
        assert str(await socket.recv()).startswith("user=")
        items = [{"channel": "pa1", "formats": {"ws-message": fmt}} for fmt in (
            {"type": "ping", "content": "p"}, {"type": "pong"}, {"type": "binary", "content": "bin"},
            {"type": "text", "content-bin": base64.b64encode(b"txt").decode()}, {"action": "hint"},
            {"action": "close", "code": 4002, "reason": "bye"})]  # fmt: skip
        await asyncio.to_thread(publish_raw, target, *items)
        got = [await socket.recv(), await socket.recv()]
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.recv()
    assert got == [b"bin", "txt"]  # a ping or pong frame is no message; a hint is nothing to a socket
    assert closed.value.rcvd is not None and (closed.value.rcvd.code, closed.value.rcvd.reason) == (4002, "bye")


async def test_a_hint_makes_a_stream_with_a_next_link_fetch_it(target: Target) -> None:
    action, channel = "hint", "ph-hint"
    async with AsyncExitStack() as stack:
        await subscribed(stack, target, channel)
        chunks = await held_stream(stack, target, f"/rstream?ch={channel}&prev=1&now=1", b"stream open\n")
        await asyncio.to_thread(publish_raw, target, {"channel": channel, "http-stream": {"action": action}})
        recovered = f"recovered {channel}; last-id=1\n".encode()
        assert await read_until(chunks, recovered) == recovered


@pytest.mark.parametrize("action", ["hint", "refresh"])
async def test_a_hint_makes_a_long_poll_ask_its_origin_again(target: Target, action: str) -> None:
    channel = f"pl-{action}"
    async with httpx.AsyncClient(timeout=30) as client:
        request = asyncio.ensure_future(client.get(f"{target.url}/rpoll?ch={channel}&prev=1&timeout=20"))
        await asyncio.sleep(2)  # past the refresh of a channel new to the broker (1 s), which would ask too
        while not request.done():
            await asyncio.to_thread(publish_raw, target, {"channel": channel, "http-response": {"action": action}})
            await asyncio.wait({request}, timeout=0.3)
        response = request.result()
    assert (response.status_code, response.text) == (200, f"recovered {channel}; last-id=1\n")


# The remaining WebSocket control messages: session, send-delayed, flush-delayed; keep-alive modes.


async def _control(socket: websockets.ClientConnection, message: dict[str, object]) -> None:
    await socket.send(f"control {json.dumps(message)}")


async def _recv_for(socket: websockets.ClientConnection, seconds: float) -> list[str]:
    got: list[str] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                got.append(str(await socket.recv()))
    return got


async def test_send_delayed_sends_after_its_timeout_and_flush_delayed_at_once(target: Target) -> None:
    async with websockets.connect(f"{target.ws_url}/ws?ch=sd1") as socket:
        assert await socket.recv() == "welcome"
        await _control(socket, {"type": "session", "id": "s-1"})  # read, nothing to see
        assert await socket.recv() == "control sent"
        started = time.monotonic()
        await _control(socket, {"type": "send-delayed", "content": "later", "timeout": 1})
        assert await socket.recv() == "control sent"
        assert await socket.recv() == "later"
        waited = time.monotonic() - started
        await _control(socket, {"type": "send-delayed", "content": "flushed", "timeout": 30})
        await _control(socket, {"type": "flush-delayed"})
        got = await _recv_for(socket, 3)
    assert 0.7 <= waited < 5
    assert sorted(got) == ["control sent", "control sent", "flushed"]


async def test_keep_alive_interval_is_sent_however_busy_the_socket_and_turned_off_without_content(
    target: Target,
) -> None:
    async with websockets.connect(f"{target.ws_url}/ws?ch=ka1") as socket:
        assert await socket.recv() == "welcome"
        await _control(socket, {"type": "keep-alive", "content": "ka", "timeout": 1, "mode": "interval"})
        got = []
        for n in range(8):  # busier than the keep-alive's timeout: an echo every 0.4 s
            await socket.send(f"m{n}")
            got += await _recv_for(socket, 0.4)
        await _control(socket, {"type": "keep-alive"})  # no content: off
        assert await socket.recv() == "control sent"
        after = await _recv_for(socket, 1.5)
    assert got.count("ka") >= 2 and after == []
    assert [m for m in got if m.startswith("echo:")] == [f"echo:m{n}" for n in range(8)]


async def test_an_idle_keep_alive_is_sent_on_a_quiet_socket(target: Target) -> None:
    async with websockets.connect(f"{target.ws_url}/ws?ch=ka2") as socket:
        assert await socket.recv() == "welcome"
        await _control(socket, {"type": "keep-alive", "content": "idle-ka", "timeout": 1})
        got = await _recv_for(socket, 2.5)
    assert got[0] == "control sent" and "idle-ka" in got


async def test_grip_keep_alive_mode_interval_is_sent_however_busy_the_stream(target: Target) -> None:
    got = bytearray()

    async def read(chunks: AsyncIterator[bytes]) -> None:
        async for chunk in chunks:
            got.extend(chunk)

    async with AsyncExitStack() as stack:
        chunks = await held_stream(stack, target, "/stream?ch=ka3&ka=1&kamode=interval", b"stream open\n")
        reader = asyncio.ensure_future(read(chunks))
        for n in range(8):  # an item every 0.4 s: busier than the keep-alive's timeout
            await asyncio.to_thread(publish_raw, target, {"channel": "ka3", "http-stream": {"content": f"i{n}\n"}})
            await asyncio.sleep(0.4)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    lines = got.decode().splitlines()
    assert [line for line in lines if line.startswith("i")] == [f"i{n}" for n in range(8)]
    assert lines.count("ka") >= 2


async def test_grip_expose_headers_keeps_the_named_origin_headers_on_a_published_answer(target: Target) -> None:
    async with httpx.AsyncClient(timeout=20) as client:
        request = asyncio.ensure_future(client.get(f"{target.url}/poll?ch=ex1&expose=1"))
        while not request.done():
            fmt = HttpResponseFormat(headers={"X-Pub": "published"}, body="published\n")
            await asyncio.to_thread(target.publish, "ex1", fmt)
            await asyncio.wait({request}, timeout=0.2)
        response = request.result()
    assert (response.status_code, response.text) == (200, "published\n")
    assert response.headers["x-origin-kept"] == "yes" and response.headers.get_list("x-pub") == ["published"]
    assert "x-not-named" not in response.headers and no_grip_headers(response)


# A stream hold's first body relayed as it arrives (Pushpin: once over 100,000 bytes, docs/decisions.md).


async def test_a_stream_holds_first_body_reaches_the_client_before_the_origin_finished_it(target: Target) -> None:
    key = uuid.uuid4().hex
    first = 150_000  # over Pushpin's 100,000 bytes it buffers before it relays (fanmeter relays at once)
    async with AsyncExitStack() as stack:
        chunks = await held_stream(stack, target, f"/slowstream?ch=sb1-{key}&first={first}&key={key}",
                                   b"a" * (first - 1) + b"\n")  # fmt: skip
        released = httpx.get(f"{target.url}/release?key={key}")  # the origin sends the rest only now
        assert released.text == "released\n"
        assert await read_until(chunks, b"rest\n") == b"rest\n"
        got = b""
        async with asyncio.timeout(15):
            while b"after\n" not in got:  # Pushpin subscribes once the origin's body is over: publish until it lands
                await asyncio.to_thread(
                    publish_raw, target, {"channel": f"sb1-{key}", "http-stream": {"content": "after\n"}}
                )
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.3):
                        got += await anext(chunks)


# Cross-origin clients: Pushpin's automatic CORS (a route's ``aco``), fanmeter's per-service ``cross_origin``.


@pytest.fixture(scope="module")
def pushpin_cors_target(origin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with pushpin(tmp_path_factory.mktemp("pushpin-aco"), origin_url, routes=("*,aco",)) as node:
        yield Target("pushpin", node.url, {"control_uri": node.control_uri})


@pytest.fixture(params=["fanmeter", "pushpin"])
def cors_target(request: pytest.FixtureRequest) -> Target:
    if request.param == "pushpin":
        return request.getfixturevalue("pushpin_cors_target")  # type: ignore[no-any-return]
    broker: BrokerNode = request.getfixturevalue("broker")
    return Target(
        "fanmeter", f"{broker.url}/s/svc-cors", {"control_uri": f"{broker.url}/service/svc-cors", "key": TOKEN}
    )


def cors_of(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


PAGE = "http://page.test:8000"
EVERY_METHOD = "OPTIONS, HEAD, GET, POST, PUT, DELETE"


def test_a_relayed_answer_gets_the_cors_headers(cors_target: Target) -> None:
    response = httpx.get(f"{cors_target.url}/plain", headers={"Origin": PAGE})
    assert (response.status_code, response.text) == (200, "plain answer\n")
    assert cors_of(response) == {
        "access-control-allow-methods": EVERY_METHOD, "access-control-expose-headers": "date, server, x-origin",
        "access-control-allow-credentials": "true", "access-control-allow-origin": PAGE,
        "access-control-max-age": "3600",
    }  # fmt: skip
    assert cors_of(httpx.get(f"{cors_target.url}/plain"))["access-control-allow-origin"] == "*"


def test_a_preflight_goes_to_the_origin_and_is_allowed_what_it_asked_for(cors_target: Target) -> None:
    asked = {"Origin": PAGE, "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "x-a, X-B"}
    response = httpx.options(f"{cors_target.url}/plain", headers=asked)
    assert (response.status_code, response.text) == (200, "plain answer\n")  # the origin's answer to OPTIONS
    got = cors_of(response)
    assert (got["access-control-allow-methods"], got["access-control-allow-headers"]) == ("PUT", "x-a, X-B")
    assert got["access-control-allow-origin"] == PAGE


async def test_held_answers_get_the_cors_headers(cors_target: Target) -> None:
    timed_out = httpx.get(f"{cors_target.url}/poll?ch=co1&timeout=1", headers={"Origin": PAGE}, timeout=30)
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", f"{cors_target.url}/sse?ch=co2", headers={"Origin": PAGE}) as stream,
    ):
        assert await anext(stream.aiter_raw()) == b"event: open\ndata: ready\n\n"
    for response in (timed_out, stream):
        assert cors_of(response) == {
            "access-control-allow-methods": EVERY_METHOD, "access-control-expose-headers": "date, server",
            "access-control-allow-credentials": "true", "access-control-allow-origin": PAGE,
            "access-control-max-age": "3600",
        }  # fmt: skip


def test_without_automatic_cors_no_cors_header_is_added(target: Target) -> None:
    response = httpx.get(f"{target.url}/plain", headers={"Origin": PAGE})
    assert response.status_code == 200 and cors_of(response) == {}
