"""The broker under hostile input (issue 13), against a real `fanmeter broker` whose metering is shipped.

What test_broker_security.py (head limits, slow heads and bodies, hostile publish JSON, published
headers, WebSocket message size) and the GRIP parser property tests do not cover: hostile *origins*
(malformed GRIP headers, ``application/grip-instruct`` and ``application/websocket-events`` bodies,
hypothesis-built), request smuggling (``Content-Length`` against ``Transfer-Encoding``, two
``Content-Length``, obs-fold, bad chunk sizes), hypothesis-built publishes (malformed and oversized)
and many slowloris clients at once. Each gets a clear error (4xx, or 502 for an origin's nonsense)
or a timeout; the broker stays up; and a well-behaved client of another account, connected the
whole time, is metered exactly for what it received.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
import websockets
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.e2e.broker_metering import StreamClient, wait_for_usage
from tests.e2e.broker_raw import MiB, head, raw_exchange, trickled
from tests.e2e.broker_stack import GRIP_KEY, TOKEN, BrokerNode, broker_node
from tests.e2e.test_broker_security import rss_bytes
from tests.hostile_events import record_figures

pytestmark = pytest.mark.anyio

GOOD_ACCOUNT, HOSTILE_ACCOUNT = f"acct-well-behaved-{time.time_ns()}", "acct-hostile-origin"
ANSWERS: Counter[str] = Counter()  # every hostile exchange's outcome in this module, for the figures


@pytest.fixture(scope="module")
def node(
    broker_stack_env: dict[str, str], origin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerNode]:
    base = {"publish_tokens": [TOKEN], "grip_key": GRIP_KEY, "fanout_enabled": True, "origin": origin_url}
    services = [
        {**base, "service_id": "svc-good", "account_id": GOOD_ACCOUNT},
        {**base, "service_id": "svc-hostile", "account_id": HOSTILE_ACCOUNT},
    ]
    config = tmp_path_factory.mktemp("hostile") / "services.json"
    config.write_text(json.dumps({"services": services}))
    extra = {"FANMETER_BROKER_HEADER_TIMEOUT_SECONDS": "3", "FANMETER_BROKER_BODY_TIMEOUT_SECONDS": "2"}
    with broker_node(broker_stack_env, config, "e2e-hostile", extra) as started:
        yield started


def hostile_path(status: int, headers: list[tuple[str, str]], body: bytes) -> str:
    answer = {"status": status, "headers": headers, "body": base64.b64encode(body).decode()}
    return "/s/svc-hostile/hostile?a=" + base64.urlsafe_b64encode(json.dumps(answer).encode()).decode()


def _outcome(kind: str, status: int | str) -> None:
    ANSWERS[f"{kind} {status}"] += 1


# Hostile origins.

GRIP_NAMES = ["Grip-Hold", "Grip-Channel", "Grip-Timeout", "Grip-Keep-Alive", "Grip-Link", "Grip-Status",
              "Grip-Set-Meta", "Grip-Expose-Headers", "Grip-Previous-Id"]  # fmt: skip
GRIP_VALUES = st.one_of(
    st.sampled_from(["stream", "response", "", "STREAM", "stream, response", "-1", "99999999999999999999", "1e3",
                     "news; prev-id=", "; filter=x", "a, , b", "ch; prev-id=\"unterminated", "ka; format=nope",
                     "</x>; rel=next; timeout=-5", "600 Nope", "abc", "0", "1000"]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
)  # fmt: skip
INSTRUCT_BODIES = st.one_of(
    st.binary(max_size=80),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
            ["hold", "mode", "channels", "name", "timeout", "response", "code", "headers", "body", "body-bin",
             "keep-alive", "prev-id", "filters"]), inner, max_size=4),
        max_leaves=10,
    ).map(lambda doc: json.dumps(doc).encode()),
)  # fmt: skip


@st.composite
def hostile_origin_answers(draw: st.DrawFn) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [(draw(st.sampled_from(GRIP_NAMES)), draw(GRIP_VALUES)) for _ in range(draw(st.integers(1, 4)))]
    if draw(st.booleans()):
        return 200, [("Content-Type", "application/grip-instruct"), *headers[:1]], draw(INSTRUCT_BODIES)
    return draw(st.sampled_from([200, 204, 301, 404])), [("Content-Type", "text/plain"), *headers], b"origin body\n"


def _ask_through_broker(
    client: httpx.Client, node: BrokerNode, answer: tuple[int, list[tuple[str, str]], bytes]
) -> None:
    try:
        with client.stream("GET", node.url + hostile_path(*answer)) as response:
            status = response.status_code
            # An origin's nonsense is a 502, never a 500, unless the origin asked for it (Grip-Status: 500).
            asked = {value.split(" ")[0] for name, value in answer[1] if name == "Grip-Status"}
            assert status < 500 or status == 502 or str(status) in asked, (status, answer)
            if status == 502:
                assert response.read().startswith(b"Bad gateway: "), answer
    except httpx.ReadTimeout:  # a valid long-poll hold the hypothesis built: held until the client gave up
        status = "held"
    _outcome("origin answer", status)


# WebSocket-over-HTTP: what the origin answers the broker's OPEN with.
WS_EVENT_BODIES = st.one_of(
    st.binary(max_size=60),
    st.lists(st.sampled_from([b"OPEN\r\n", b"TEXT 5\r\nhello\r\n", b"TEXT ff\r\nx\r\n", b"TEXT 99999999\r\n",
                              b"CLOSE 2\r\n\x03\xe8\r\n", b"BINARY -1\r\n", b"PING\r\n", b"c:{bad json\r\n",
                              b"TEXT 20\r\nc:{\"type\":\"subscribe\"}\r\n", b"DISCONNECT\r\n", b"\r\n", b"TEXT\r\n"]),
             max_size=5).map(b"".join),
)  # fmt: skip


async def _open_websocket(node: BrokerNode, body: bytes) -> None:
    headers = [("Content-Type", "application/websocket-events"), ("Sec-WebSocket-Extensions", "grip")]
    url = f"ws://127.0.0.1:{node.port}{hostile_path(200, headers, body)}"
    try:
        async with websockets.connect(url, open_timeout=5, close_timeout=2) as socket_:
            await asyncio.wait_for(socket_.recv(), 2)
            outcome = "message"
    except websockets.InvalidStatus as refused:
        outcome = str(refused.response.status_code)
        assert refused.response.status_code < 500 or refused.response.status_code == 502, body
    except websockets.ConnectionClosed as closed:
        outcome = f"closed {closed.rcvd.code if closed.rcvd else 'without a frame'}"
    except TimeoutError:
        outcome = "open, nothing sent"
    _outcome("websocket-events answer", outcome)


# Request smuggling: framing a front proxy and the broker could read differently. Each is refused with
# 400 (and the connection closed), so a request hidden in the body never runs: it would publish to the
# well-behaved client's channel, which the client would receive and the meter count.
SMUGGLED_BODY = b'{"items":[{"channel":"good","formats":{"http-stream":{"content":"smuggled\\n"}}}]}'
SMUGGLED = (
    b"POST /service/svc-good/publish/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode()
    + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED_BODY) + SMUGGLED_BODY
)  # fmt: skip
SMUGGLING = {
    "content-length and chunked": b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "chunked and content-length": b"Transfer-Encoding: chunked\r\nContent-Length: 300\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "two content-lengths": b"Content-Length: 0\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED,
    "a content-length list": b"Content-Length: 0, %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED,
    "chunked twice": b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "chunked, identity": b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "xchunked": b"Transfer-Encoding: xchunked\r\n\r\n" + SMUGGLED,
    "obs-fold of transfer-encoding": b"Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "obs-fold of a header": b"X-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n",
    "space before the colon": b"Content-Length : 0\r\nTransfer-Encoding : chunked\r\n\r\n" + SMUGGLED,
    "a chunk size in hex overflow": b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff1\r\nx\r\n0\r\n\r\n",
    "a chunk size with junk": b"Transfer-Encoding: chunked\r\n\r\n5;\x00\r\nhello\r\n0\r\n\r\n",
    "a bare LF line end": b"Content-Length: 0\nTransfer-Encoding: chunked\n\n0\n\n" + SMUGGLED,
    "a negative content-length": b"Content-Length: -1\r\n\r\n" + SMUGGLED,
}


def _smuggle(node: BrokerNode, name: str, rest: bytes) -> None:
    request = b"POST /service/svc-hostile/publish/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n" % TOKEN.encode()
    exchange = raw_exchange(node.port, [request + rest], timeout_s=10)
    assert exchange.status is not None and 400 <= exchange.status < 500, (name, exchange)
    _outcome("smuggling", exchange.status)


# Publishes built by hypothesis (malformed, or well-formed and harmless), and one over the size limit.
PUBLISH_BODIES = st.one_of(
    st.binary(max_size=100),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
            ["items", "channel", "id", "prev-id", "formats", "http-stream", "http-response", "ws-message",
             "content", "content-bin", "action", "code", "headers", "body", "type"]), inner, max_size=4),
        max_leaves=14,
    ).map(lambda doc: json.dumps(doc).encode()),
)  # fmt: skip


def _publish(client: httpx.Client, node: BrokerNode, body: bytes) -> None:
    response = client.post(node.publish_url("svc-hostile"), content=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code in (200, 400, 413), (response.status_code, response.text, body)
    if response.status_code == 400:
        assert response.text.startswith("Invalid format: "), response.text
    _outcome("publish", response.status_code)


def _slowloris(node: BrokerNode, clients: int) -> None:
    """``clients`` at once, each sending its head, or a publish's body, a byte at a time (one every 0.25 s):
    each is 408 (the head after 3 s, the body 2 s after its head)."""
    results: list[Any] = []
    stream = head(b"X-Slow: " + b"a" * 40 + b"\r\n", b"\r\n", path="/s/svc-good/stream?ch=good")
    publish = b"POST /service/svc-good/publish/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n" % TOKEN.encode()
    slow_head = [bytes([b]) for b in stream]
    slow_body = [publish + b"Content-Length: %d\r\n\r\n" % len(SMUGGLED_BODY), *(bytes([b]) for b in SMUGGLED_BODY)]
    trickles = [slow_head if n % 2 else slow_body for n in range(clients)]

    def trickle(parts: list[bytes]) -> None:
        results.append(raw_exchange(node.port, trickled(parts, 0.25)))

    threads = [threading.Thread(target=trickle, args=(parts,)) for parts in trickles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        assert result.status == 408, result
        _outcome("slowloris", result.status)


def _hypothesis_battery(node: BrokerNode) -> None:
    with httpx.Client(timeout=httpx.Timeout(10, read=2)) as client:

        @given(answer=hostile_origin_answers())
        @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def origins(answer: tuple[int, list[tuple[str, str]], bytes]) -> None:
            _ask_through_broker(client, node, answer)

        @given(body=PUBLISH_BODIES)
        @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def publishes(body: bytes) -> None:
            _publish(client, node, body)

        @given(body=WS_EVENT_BODIES)
        @example(body=b"OPEN\r\nTEXT 5\r\nhello\r\n")  # a good answer: the hostile path itself works
        @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def websockets_events(body: bytes) -> None:
            asyncio.run(_open_websocket(node, body))

        origins()
        publishes()
        websockets_events()
        _publish(client, node, json.dumps({"items": [{"channel": "x", "formats": {
            "http-stream": {"content": "x" * 1_100_000}}}]}).encode())  # fmt: skip


async def test_hostile_origins_publishes_smuggling_and_slowloris_get_clear_errors_and_a_good_client_is_billed_exactly(
    node: BrokerNode, broker_stack_env: dict[str, str]
) -> None:
    publishes = 6
    async with httpx.AsyncClient(timeout=30) as client, AsyncExitStack() as stack:
        good = [StreamClient(client, f"{node.url}/s/svc-good/stream?ch=good") for _ in range(2)]
        for stream in good:
            await stream.open(stack)
        before = rss_bytes(node.process.pid)
        battery = asyncio.gather(
            asyncio.to_thread(_hypothesis_battery, node),
            asyncio.to_thread(lambda: [_smuggle(node, name, rest) for name, rest in SMUGGLING.items()]),
            asyncio.to_thread(_slowloris, node, 20),
        )
        for n in range(publishes):  # the well-behaved publisher, while the battery runs
            item = {"channel": "good", "formats": {"http-stream": {"content": f"good {n}\n"}}}
            auth = {"Authorization": f"Bearer {TOKEN}"}
            assert (
                await client.post(node.publish_url("svc-good"), json={"items": [item]}, headers=auth)
            ).status_code == 200
            await asyncio.sleep(0.5)
        await battery
        growth = rss_bytes(node.process.pid) - before
        for stream in good:
            await stream.receive(publishes)
            await stream.receive_until_idle(1.0)
    assert node.process.poll() is None and httpx.get(f"{node.url}/s/svc-good/plain").status_code == 200
    assert [stream.lines for stream in good] == [[f"good {n}" for n in range(publishes)]] * 2  # nothing smuggled in
    expected = {
        "messages_published": publishes,
        "messages_delivered": publishes * len(good),
        "connection_minutes": len(good),
        "bytes_out": sum(stream.bytes for stream in good),
    }
    assert wait_for_usage(broker_stack_env, GOOD_ACCOUNT, expected) == expected
    assert growth < 16 * MiB, f"the broker grew by {growth / MiB:.1f} MiB"
    assert ANSWERS["websocket-events answer message"] >= 1 and ANSWERS["origin answer 502"] >= 1
    record_figures("broker", sum(ANSWERS.values()), ANSWERS, crashes=0, rss_growth_mib=round(growth / MiB, 1))
