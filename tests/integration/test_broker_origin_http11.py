"""The broker's origin client against a real socket server that answers with each kind of HTTP/1.1 framing."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from broker.origin.client import public_ca_context
from broker.origin.http11 import ConnectFailed, Endpoint, OriginClient, RawReply
from tests.stack import free_port
from tests.tls_origin import self_signed, serving

pytestmark = pytest.mark.anyio

Answer = Callable[[bytes], bytes | None]  # request head -> raw response (None: close without answering)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Server:
    """Answers each request on a connection with ``answer``; counts connections and requests."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.close_after_each = False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                body = await reader.readexactly(length) if length else b""
                self.requests.append(head + body)
                response = self.answer(head)
                if response is None:
                    break
                writer.write(response)
                await writer.drain()
                if self.close_after_each or b"Connection: close" in response:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


Serve = Callable[[Answer], Awaitable[tuple[Server, Endpoint]]]
Clients = Callable[..., OriginClient]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start answering servers on loopback ports; all are closed after the test."""
    listeners: list[asyncio.Server] = []

    async def start(answer: Answer) -> tuple[Server, Endpoint]:
        server, port = Server(answer), free_port()
        listeners.append(await asyncio.start_server(server.handle, "127.0.0.1", port))
        return server, Endpoint("http", "127.0.0.1", port, None)

    yield start
    for listener in listeners:
        listener.close()


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    """Origin clients (``timeout_s`` 5 s unless given); their kept connections are closed after the test."""
    made: list[OriginClient] = []

    def make(timeout_s: float = 5.0) -> OriginClient:
        made.append(OriginClient(public_ca_context(), timeout_s))
        return made[-1]

    yield make
    for origin in made:
        await origin.close()


def fixed(raw: bytes) -> Answer:
    return lambda _head: raw


async def test_a_content_length_body_is_read_and_the_connection_kept(
    serve: Serve, clients: Callable[..., OriginClient]
) -> None:
    server, endpoint = await serve(fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello"))
    origin = clients()
    first = await origin.request(endpoint, "GET", "/a?b=c", [("X-Client", "yes")], b"")
    second = await origin.request(endpoint, "GET", "/again", [], b"")

    assert (first.code, first.reason, first.body) == (200, "OK", b"hello")
    assert ("X-A", "1") in first.headers and second.body == b"hello"
    assert server.connections == 1  # kept alive and reused
    assert server.requests[0].startswith(b"GET /a?b=c HTTP/1.1\r\nX-Client: yes\r\nHost: 127.0.0.1:")


async def test_a_chunked_body_is_decoded(serve: Serve, clients: Clients) -> None:
    _, endpoint = await serve(
        fixed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    )
    reply = await clients().request(endpoint, "GET", "/", [], b"")
    assert reply.body == b"hello world"


async def test_a_body_delimited_by_the_close_of_the_connection_is_read_whole(
    serve: Serve, clients: Callable[..., OriginClient]
) -> None:
    server, endpoint = await serve(fixed(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"))
    server.close_after_each = True
    origin = clients()
    assert (await origin.request(endpoint, "GET", "/", [], b"")).body == b"until the end"
    assert (await origin.request(endpoint, "GET", "/", [], b"")).body == b"until the end"  # a new connection
    assert server.connections == 2


async def test_head_and_204_answers_have_no_body(serve: Serve, clients: Clients) -> None:
    _, endpoint = await serve(
        lambda head: (
            b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"
            if head.startswith(b"HEAD")
            else b"HTTP/1.1 204 No Content\r\n\r\n"
        )
    )
    origin = clients()
    head = await origin.request(endpoint, "HEAD", "/", [], b"")
    empty = await origin.request(endpoint, "GET", "/", [], b"")
    assert (head.code, head.body, empty.code, empty.body) == (200, b"", 204, b"")


async def test_a_post_carries_its_body_with_its_length(serve: Serve, clients: Clients) -> None:
    server, endpoint = await serve(fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    await clients().request(endpoint, "POST", "/ws", [("Content-Type", "application/websocket-events")], b"OPEN\r\n")
    assert server.requests[0].endswith(b"Content-Length: 6\r\n\r\nOPEN\r\n")


async def test_a_kept_connection_the_origin_closed_is_replaced_without_an_error(
    serve: Serve, clients: Callable[..., OriginClient]
) -> None:
    one, two = (f"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n{n}".encode() for n in (1, 2))
    answers = iter([one, None, two])
    server, endpoint = await serve(lambda _head: next(answers))
    origin = clients()
    assert (await origin.request(endpoint, "GET", "/", [], b"")).body == b"1"
    # The server reads the next request on the kept connection and closes it without answering.
    assert (await origin.request(endpoint, "GET", "/", [], b"")).body == b"2"
    assert server.connections == 2


async def test_a_connection_closed_mid_response_is_an_error(serve: Serve, clients: Clients) -> None:
    server, endpoint = await serve(fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"))
    server.close_after_each = True
    with pytest.raises(ConnectionError, match="mid-response"):
        await clients().request(endpoint, "GET", "/", [], b"")


async def test_a_response_that_is_not_http_is_an_error(serve: Serve, clients: Clients) -> None:
    _, endpoint = await serve(fixed(b"SSH-2.0-OpenSSH\r\n\r\n"))
    with pytest.raises(ConnectionError, match="invalid HTTP response"):
        await clients().request(endpoint, "GET", "/", [], b"")


async def test_an_origin_that_does_not_answer_times_out(clients: Clients) -> None:
    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # read and never answer
        writer.close()

    port = free_port()
    silent = await asyncio.start_server(never, "127.0.0.1", port)
    with pytest.raises(TimeoutError):
        await clients(timeout_s=0.3).request(Endpoint("http", "127.0.0.1", port, None), "GET", "/", [], b"")
    silent.close()


async def test_a_refused_connection_is_connect_failed(clients: Clients) -> None:
    with pytest.raises(ConnectFailed):
        await clients().request(Endpoint("http", "127.0.0.1", free_port(), None), "GET", "/", [], b"")


async def test_a_self_signed_tls_origin_fails_the_certificate_check(
    tmp_path: Path, clients: Callable[..., OriginClient]
) -> None:
    with serving(self_signed(tmp_path)) as origin, pytest.raises(ssl.SSLCertVerificationError):
        await clients().request(Endpoint("https", "127.0.0.1", origin.port, "localhost"), "GET", "/", [], b"")


async def test_a_header_with_a_line_break_is_refused_before_sending(
    serve: Serve, clients: Callable[..., OriginClient]
) -> None:
    server, endpoint = await serve(fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
    with pytest.raises(ValueError, match="line break"):
        await clients().request(endpoint, "GET", "/", [("X-Evil", "a\r\nInjected: 1")], b"")
    assert server.requests == []


# A body relayed as it comes (``stream_if``): the head answers, the body is read in parts as it arrives.


def always(_code: int, _headers: object) -> bool:
    return True


async def whole(reply: RawReply) -> bytes:
    """The reply's body with whatever of it is still to come."""
    got = reply.body
    while reply.rest is not None and (chunk := await reply.rest.read()):
        got += chunk
    return got


PartsOrigin = Callable[..., Awaitable[tuple[Endpoint, list[int]]]]


@pytest.fixture
async def parts_origin() -> AsyncIterator[PartsOrigin]:
    """Origins that write ``parts[0]`` (head and first bytes), wait for ``gate``, then the other parts."""
    listeners: list[asyncio.Server] = []

    async def start(parts: list[bytes], gate: asyncio.Event, close: bool = False) -> tuple[Endpoint, list[int]]:
        endpoint, connections, listener = await _parts_origin(parts, gate, close)
        listeners.append(listener)
        return endpoint, connections

    yield start
    for listener in listeners:
        listener.close()
        await listener.wait_closed()


async def _parts_origin(
    parts: list[bytes], gate: asyncio.Event, close: bool
) -> tuple[Endpoint, list[int], asyncio.Server]:
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(parts[0])
                await writer.drain()
                await gate.wait()
                for part in parts[1:]:
                    writer.write(part)
                    await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    port = free_port()
    listener = await asyncio.start_server(handle, "127.0.0.1", port)
    return Endpoint("http", "127.0.0.1", port, None), connections, listener


async def test_a_streamed_body_answers_at_its_head_comes_in_parts_and_the_connection_is_kept(
    clients: Clients, parts_origin: PartsOrigin
) -> None:
    gate = asyncio.Event()
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n"
    endpoint, connections = await parts_origin([head, b"4\r\nlast\r\n0\r\n\r\n"], gate)
    origin = clients()
    reply = await origin.request(endpoint, "GET", "/", [], b"", always)
    assert (reply.code, reply.body) == (200, b"") and reply.rest is not None
    assert await reply.rest.read() == b"first"  # before the origin sent the rest
    gate.set()
    assert [await reply.rest.read(), await reply.rest.read()] == [b"last", b""]
    again = await origin.request(endpoint, "GET", "/", [], b"", always)
    assert await whole(again) == b"firstlast"  # the gate is open now: maybe read whole with its head
    assert len(connections) == 1  # the ended body gave its connection back


async def test_a_streamed_body_delimited_by_the_close_ends_there(clients: Clients, parts_origin: PartsOrigin) -> None:
    gate = asyncio.Event()
    gate.set()
    endpoint, _ = await parts_origin([b"HTTP/1.1 200 OK\r\n\r\nall", b" of it"], gate, close=True)
    reply = await clients().request(endpoint, "GET", "/", [], b"", always)
    assert await whole(reply) == b"all of it"


async def test_a_streamed_body_given_up_closes_its_connection_and_one_cut_short_is_an_error(
    clients: Clients, parts_origin: PartsOrigin
) -> None:
    gate = asyncio.Event()
    endpoint, connections = await parts_origin([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf"], gate, True)
    origin = clients()
    given_up = await origin.request(endpoint, "GET", "/", [], b"", always)
    assert given_up.rest is not None and await given_up.rest.read() == b"half"
    given_up.rest.close()
    cut = await origin.request(endpoint, "GET", "/", [], b"", always)
    assert len(connections) == 2  # the one given up mid-body was not reused
    assert cut.rest is not None and await cut.rest.read() == b"half"
    gate.set()  # the origin closes with 6 bytes still owed
    with pytest.raises(ConnectionError):
        await cut.rest.read()


async def test_a_response_stream_if_declines_or_whose_body_came_with_its_head_is_read_whole(
    serve: Serve, clients: Clients
) -> None:
    _, endpoint = await serve(fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nwhole"))
    origin = clients()
    reply = await origin.request(endpoint, "GET", "/", [], b"", lambda _code, _headers: False)
    assert (reply.body, reply.rest) == (b"whole", None)
    with_its_head = await origin.request(endpoint, "GET", "/", [], b"", always)
    assert (with_its_head.body, with_its_head.rest) == (b"whole", None)  # no stream to keep for it
