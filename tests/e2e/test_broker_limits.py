"""What one party may take of a real `fanmeter broker` (docs/security.md, "Limits"), over real sockets,
with the node's events shipped to the real pipeline so every other party's usage is checked exactly:

- publishes per token: 429 with Retry-After and a JSON reason once a token is over its rate; nothing
  of a refused publish is delivered or billed, another token of the same service is not slowed;
- connections held per service: the one past the limit is 503 with Retry-After (a WebSocket handshake
  too), not billed; the held ones and another service go on untouched;
- connections per client address: a flood beyond the limit is 429 at connect, the broker stays up and
  its memory bounded, and another address's connection and its metering stay exact;
- a body still trickling in after the broker answered is cut off at the body deadline.

Each concern has an account of its own, so its usage is its alone. Loopback is counted here like
any address (``FANMETER_BROKER_CONNECTION_LIMIT_EXEMPT`` empty); the clients of the flood and of the
bystander come from other loopback addresses (127.0.0.2-4) than the rest of the tests (127.0.0.1).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.broker_metering import wait_for_usage
from tests.e2e.broker_stack import GRIP_KEY, TOKEN, BrokerNode, broker_node
from tests.stack import free_port

pytestmark = pytest.mark.anyio

SECOND_TOKEN = "publish-token-b"
RATE, BURST = 2, 4  # publishes per second per token, and the burst
HELD_LIMIT = 5  # svc-held's override; every other service may hold 1000
ADDRESS_LIMIT = 20
FLOOD = 300  # connection attempts beyond the address limit
MiB = 1024 * 1024
METRICS_PORT = free_port()
ACCOUNTS = {
    "svc-pub": "acct-lim-pub",
    "svc-held": "acct-lim-held",
    "svc-beside": "acct-lim-beside",
    "svc-flood": "acct-lim-flood",
    "svc-calm": "acct-lim-calm",
}


@pytest.fixture(scope="module")
def limited(
    broker_stack_env: dict[str, str], origin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerNode]:
    base = {"origin": origin_url, "publish_tokens": [TOKEN, SECOND_TOKEN], "grip_key": GRIP_KEY, "fanout_enabled": True}
    services = [{**base, "service_id": s, "account_id": a} for s, a in ACCOUNTS.items()]
    config = tmp_path_factory.mktemp("limits") / "services.json"
    config.write_text(json.dumps({"services": services}))
    extra = {
        "FANMETER_BROKER_PUBLISH_RATE_PER_SECOND": str(RATE),
        "FANMETER_BROKER_PUBLISH_BURST": str(BURST),
        "FANMETER_BROKER_MAX_HELD_PER_SERVICE": "1000",
        "FANMETER_BROKER_MAX_HELD_OVERRIDES": json.dumps({"svc-held": HELD_LIMIT}),
        "FANMETER_BROKER_MAX_CONNECTIONS_PER_ADDRESS": str(ADDRESS_LIMIT),
        "FANMETER_BROKER_CONNECTION_LIMIT_EXEMPT": "",
        "FANMETER_BROKER_BODY_TIMEOUT_SECONDS": "1",
        "FANMETER_BROKER_METRICS_PORT": str(METRICS_PORT),
    }
    with broker_node(broker_stack_env, config, "e2e-limits", extra) as node:
        yield node


# --- raw clients -------------------------------------------------------------------------------


class Held:
    """A raw stream connection: its answer's head, and what it received after."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        self.reader, self.writer, self.head = reader, writer, head
        self.received = b""

    @property
    def status(self) -> int:
        return int(self.head.split(b" ", 2)[1])

    def header(self, name: str) -> str | None:
        for line in self.head.decode("latin-1").split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    async def receive_until(self, text: bytes, timeout_s: float = 15) -> None:
        while text not in self.received:
            self.received += await asyncio.wait_for(self.reader.read(65536), timeout_s)

    def close(self) -> None:
        self.writer.close()


async def open_stream(broker: BrokerNode, path: str, source: str = "127.0.0.1") -> Held:
    reader, writer = await asyncio.open_connection("127.0.0.1", broker.port, local_addr=(source, 0))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: limits.test\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
    held = Held(reader, writer, head)
    if held.status == 200:
        await held.receive_until(b"stream open")
    return held


def publish(broker: BrokerNode, service: str, channel: str, text: str, token: str = TOKEN) -> httpx.Response:
    body = {"items": [{"channel": channel, "formats": {"http-stream": {"content": f"{text}\n"}}}]}
    return httpx.post(broker.publish_url(service), json=body, headers={"Authorization": f"Bearer {token}"})


def refused(series: str, service: str | None = None) -> float:
    """A ``fanmeter_limit_*_refused`` counter from the node's metrics listener."""
    text = httpx.get(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"fanmeter_limit_{series}_refused_total" and sample.labels.get("service") == service:
                return sample.value
    return 0.0


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


# --- publishes per token -----------------------------------------------------------------------


async def test_a_token_over_its_rate_is_429_with_retry_after_and_nothing_of_it_is_delivered_or_billed(
    limited: BrokerNode, broker_stack_env: dict[str, str]
) -> None:
    subscriber = await open_stream(limited, "/s/svc-pub/stream?ch=rate")
    started = time.monotonic()
    answers = [publish(limited, "svc-pub", "rate", f"burst-{n}") for n in range(10)]
    elapsed = time.monotonic() - started
    admitted = [n for n, a in enumerate(answers) if a.status_code == 200]
    refused_answers = [a for a in answers if a.status_code == 429]
    assert len(admitted) + len(refused_answers) == 10
    assert BURST <= len(admitted) <= BURST + RATE * elapsed + 1  # the burst, and what the rate refilled meanwhile
    limit = refused_answers[0]
    assert limit.headers["content-type"] == "application/json"
    retry_after = int(limit.headers["retry-after"])
    assert 1 <= retry_after <= 1 / RATE + 1
    assert limit.json()["retry_after_seconds"] == retry_after
    assert "token #1" in limit.json()["detail"] and TOKEN not in limit.text  # its id, never the secret
    assert refused("publishes", "svc-pub") == len(refused_answers)

    assert publish(limited, "svc-pub", "rate", "other-token", token=SECOND_TOKEN).status_code == 200
    await asyncio.sleep(retry_after)
    assert publish(limited, "svc-pub", "rate", "after-the-wait").status_code == 200

    await subscriber.receive_until(b"after-the-wait")
    expected = [f"burst-{n}" for n in admitted] + ["other-token", "after-the-wait"]
    received = subscriber.received.decode()
    assert all(f"{text}\n" in received for text in expected)
    assert not any(f"burst-{n}\n" in received for n in range(10) if n not in admitted)  # refused: never delivered
    subscriber.close()
    exact = {"messages_published": len(expected), "messages_delivered": len(expected)}
    usage = wait_for_usage(broker_stack_env, "acct-lim-pub", exact)
    assert {k: usage[k] for k in exact} == exact  # the refused ones were never delivered nor billed


# --- connections held per service --------------------------------------------------------------


async def test_a_service_at_its_held_limit_refuses_the_next_with_503_unbilled_and_others_go_on(
    limited: BrokerNode, broker_stack_env: dict[str, str]
) -> None:
    held = [await open_stream(limited, "/s/svc-held/stream?ch=full") for _ in range(HELD_LIMIT)]
    assert [h.status for h in held] == [200] * HELD_LIMIT

    over = await open_stream(limited, "/s/svc-held/stream?ch=full")
    assert over.status == 503
    assert over.header("retry-after") == "10"
    body = await asyncio.wait_for(over.reader.read(4096), 5)
    assert b"limit of 5 connections" in body
    over.close()
    with pytest.raises(websockets.InvalidStatus) as denied:
        await websockets.connect(limited.url.replace("http://", "ws://") + "/s/svc-held/ws?ch=full")
    assert denied.value.response.status_code == 503
    assert refused("held", "svc-held") == 2 and refused("held", "svc-beside") == 0

    beside = await open_stream(limited, "/s/svc-beside/stream?ch=full")  # another service: not limited by this one
    assert beside.status == 200
    assert publish(limited, "svc-held", "full", "to-the-held").status_code == 200
    assert publish(limited, "svc-beside", "full", "to-beside").status_code == 200
    for h in held:
        await h.receive_until(b"to-the-held")  # the held ones are untouched
    await beside.receive_until(b"to-beside")

    held.pop().close()  # one leaves: its place is free again
    again = await _admitted_once_freed(limited, "/s/svc-held/stream?ch=full")
    for h in (*held, again, beside):
        h.close()

    # 5 + the one after; the refused ones never billed
    exact = {"connection_minutes": HELD_LIMIT + 1, "messages_published": 1, "messages_delivered": HELD_LIMIT}
    usage = wait_for_usage(broker_stack_env, "acct-lim-held", exact)
    assert {k: usage[k] for k in exact} == exact
    beside_exact = {"connection_minutes": 1, "messages_published": 1, "messages_delivered": 1}
    beside_usage = wait_for_usage(broker_stack_env, "acct-lim-beside", beside_exact)
    assert {k: beside_usage[k] for k in beside_exact} == beside_exact


async def _admitted_once_freed(broker: BrokerNode, path: str, timeout_s: float = 10) -> Held:
    """A stream opened once the broker has seen the freed connection go (it learns of it asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while True:
        attempt = await open_stream(broker, path)
        if attempt.status == 200 or time.monotonic() > deadline:
            assert attempt.status == 200
            return attempt
        attempt.close()
        await asyncio.sleep(0.1)


# --- connections per client address ------------------------------------------------------------


async def _refused_at_connect(broker: BrokerNode, source: str) -> tuple[int | None, str | None]:
    """A connection from ``source`` that sends a request and reads the answer: its status and Retry-After."""
    try:
        held = await open_stream(broker, "/s/svc-flood/stream?ch=flood", source)
    except (OSError, asyncio.IncompleteReadError, TimeoutError) as error:
        return None, repr(error)
    held.close()
    return held.status, held.header("retry-after")


async def test_a_connection_flood_from_one_address_is_429_the_broker_stays_up_and_bounded_and_others_exact(
    limited: BrokerNode, broker_stack_env: dict[str, str]
) -> None:
    calm = await open_stream(limited, "/s/svc-calm/stream?ch=calm", source="127.0.0.2")
    assert calm.status == 200
    rss_before = rss_bytes(limited.process.pid)

    flood = [await open_stream(limited, "/s/svc-flood/stream?ch=flood", "127.0.0.3") for _ in range(ADDRESS_LIMIT)]
    assert [f.status for f in flood] == [200] * ADDRESS_LIMIT
    answers: list[tuple[int | None, str | None]] = []
    for _ in range(FLOOD // 50):  # 50 at once, as fast as the broker answers them
        answers += await asyncio.gather(*(_refused_at_connect(limited, "127.0.0.3") for _ in range(50)))
    assert answers == [(429, "5")] * FLOOD  # every one refused clearly, none dropped without an answer
    assert refused("connections") == FLOOD

    plain = httpx.get(f"{limited.url}/s/svc-calm/plain", timeout=5)  # the broker is up for everyone else
    assert plain.status_code == 200
    assert publish(limited, "svc-calm", "calm", "calm-1").status_code == 200
    await calm.receive_until(b"calm-1")
    rss_after = rss_bytes(limited.process.pid)
    assert rss_after - rss_before < 24 * MiB, (rss_before, rss_after)  # 20 held streams and 300 refusals

    for f in flood:
        f.close()
    freed = await _flood_address_free_again(limited)
    freed.close()
    calm.close()
    usage = wait_for_usage(broker_stack_env, "acct-lim-flood", {"connection_minutes": ADDRESS_LIMIT + 1})
    assert usage["connection_minutes"] == ADDRESS_LIMIT + 1  # the admitted ones and the one after: no refusal billed
    calm_exact = {"connection_minutes": 1, "messages_published": 1, "messages_delivered": 1}
    calm_usage = wait_for_usage(broker_stack_env, "acct-lim-calm", calm_exact)
    assert {k: calm_usage[k] for k in calm_exact} == calm_exact


async def _flood_address_free_again(broker: BrokerNode, timeout_s: float = 10) -> Held:
    deadline = time.monotonic() + timeout_s
    while True:
        attempt = await open_stream(broker, "/s/svc-flood/stream?ch=flood", "127.0.0.3")
        if attempt.status == 200 or time.monotonic() > deadline:
            assert attempt.status == 200
            return attempt
        attempt.close()
        await asyncio.sleep(0.1)


async def test_websockets_count_against_their_address_and_give_their_place_back_when_they_close(
    limited: BrokerNode,
) -> None:
    url = limited.url.replace("http://", "ws://") + "/s/svc-beside/ws?ch=ws-limit"
    sockets = [await websockets.connect(url, sock=_from("127.0.0.4", limited)) for _ in range(ADDRESS_LIMIT)]
    assert all(s.state is websockets.State.OPEN for s in sockets)
    assert (await _refused_at_connect_ws(limited, url)) == 429
    await sockets.pop().close()
    deadline = time.monotonic() + 10
    while (status := await _refused_at_connect_ws(limited, url)) != 101 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert status == 101
    for s in sockets:
        await s.close()


async def _refused_at_connect_ws(broker: BrokerNode, url: str) -> int:
    """The handshake's status for a WebSocket from 127.0.0.4 (101 when it opened; then it is closed)."""
    try:
        connection = await websockets.connect(url, sock=_from("127.0.0.4", broker))
    except websockets.InvalidStatus as refused:
        return refused.response.status_code
    await connection.close()
    return 101


def _from(source: str, broker: BrokerNode) -> socket.socket:
    return socket.create_connection(("127.0.0.1", broker.port), source_address=(source, 0))


# --- a body still arriving after the answer ----------------------------------------------------


def test_a_body_trickled_after_the_broker_answered_is_cut_off_at_the_body_deadline(limited: BrokerNode) -> None:
    """Before: each trickled byte restarted uvicorn's keep-alive timer, so the connection lived for ever."""
    with socket.create_connection(("127.0.0.1", limited.port), timeout=10) as sock:
        sock.sendall(b"POST /service/no-such-service/publish/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 404"), answer
        started, closed = time.monotonic(), False
        while time.monotonic() - started < 8:
            try:
                sock.sendall(b"x")
                sock.settimeout(0.3)
                if sock.recv(4096) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except (ConnectionResetError, BrokenPipeError):
                closed = True
                break
        assert closed, "the connection outlived the body deadline"
        assert time.monotonic() - started < 4  # the body timeout (1 s) and the grace, well within
