"""A small HTTP/1.1 client for origin requests: keep-alive connections per origin, httptools parsing.

Every new client connection of the broker is one origin request, so its cost bounds how fast
clients can connect. httpx spent about 3 ms of CPU per request here (its pool scans every
connection per request); this client does what the broker needs and no more: one request at a
time per connection, the whole response read into memory (GRIP answers are small), bodies
delimited by ``Content-Length``, chunked encoding or the connection's close.

A response whose head says its body is to be relayed as it comes (``stream_if``: a stream hold)
is returned at its head instead, its body a ``BodyStream`` read chunk by chunk: the connection
stops reading from the origin while more than ``STREAM_HIGH_BYTES`` wait to be taken, so a large
or endless body costs bounded memory, and the first bytes reach the client before the last left
the origin.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import httptools

from broker.grip.instructions import Headers
from kernel.network_policy import IPNetwork, ip_literal, resolution_refusal

# A streamed body: the origin's socket is not read while this much waits to be relayed, and is read
# again once less than STREAM_LOW_BYTES does (a client slower than its origin holds the origin back).
STREAM_HIGH_BYTES = 256 * 1024
STREAM_LOW_BYTES = 64 * 1024
# Whether a response, by its status and head, has its body relayed as it comes.
StreamIf = Callable[[int, tuple[tuple[str, str], ...]], bool]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where connections go: connections are pooled per endpoint."""

    scheme: str
    host: str
    port: int
    server_hostname: str | None  # the TLS name verified (a backend's override host), https only
    # Set: the host's addresses are judged by the network policy (with these networks allowed) after
    # the broker resolves it, and a connection goes only to an address judged. None: not judged.
    allowed: tuple[IPNetwork, ...] | None = None


@dataclass(slots=True)
class RawReply:
    code: int
    reason: str
    headers: Headers
    body: bytes
    rest: BodyStream | None = None  # the body still to come, when it is relayed as it comes


class ConnectFailed(ConnectionError):
    """No connection to the origin could be made (refused, unreachable, TLS handshake failed)."""


class AddressRefused(ConnectFailed):
    """The origin's host is, or resolves to, an address the network policy refuses (kernel/network_policy.py)."""


class ReusedConnectionClosed(ConnectionError):
    """A kept-alive connection was closed by the origin before it answered: safe to retry on a new one."""


@dataclass(slots=True)
class _Reply:
    reason: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: list[bytes] = field(default_factory=list)
    headers_done: bool = False
    framed: bool = False  # Content-Length or chunked: the end is known without the connection closing
    streamed: bool = False  # the body goes to a BodyStream as it arrives, not into ``body``
    queued: int = 0  # bytes of ``body`` a BodyStream has not taken yet
    ended: bool = False
    error: Exception | None = None


class _OriginProtocol(asyncio.Protocol):
    """One TCP (or TLS) connection to an origin, carrying one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.used = False  # has carried an exchange before: its close before an answer is retryable
        self._parser = httptools.HttpResponseParser(self)
        self._reply = _Reply()
        self._done: asyncio.Future[None] | None = None
        self._head_only = False
        self._received = False
        self._keep_alive = False
        self._stream_if: StreamIf | None = None
        self._more: asyncio.Future[None] | None = None  # a BodyStream waiting for bytes
        self._paused = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(ConnectionError(f"invalid HTTP response: {error}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        reply = self._reply
        if reply.headers_done and not reply.framed:
            self._finish()  # a body delimited by the connection's close is complete now
        elif not self._received and self.used:
            self._fail(ReusedConnectionClosed("origin closed a kept-alive connection"))
        else:
            self._fail(ConnectionError(f"origin closed the connection mid-response{f': {exc}' if exc else ''}"))
        if reply.streamed and not reply.ended and reply.error is None:
            if reply.framed:
                reply.error = ConnectionError("origin closed the connection mid-response")
            else:
                reply.ended = True  # the connection's close delimits the body
            self._wake()

    # httptools callbacks
    def on_status(self, status: bytes) -> None:
        self._reply.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._reply.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        reply = self._reply
        reply.headers_done = True
        names = {name.lower() for name, _ in reply.headers}
        code = self._parser.get_status_code()
        reply.framed = "content-length" in names or "transfer-encoding" in names or code in (204, 304)
        if self._head_only:
            self._finish()
        elif self._stream_if is not None and self._stream_if(code, tuple(reply.headers)):
            reply.streamed = True
            self._finish()  # the exchange answers with the head; the body follows through a BodyStream

    def on_body(self, body: bytes) -> None:
        reply = self._reply
        reply.body.append(body)
        if reply.streamed:
            reply.queued += len(body)
            if reply.queued > STREAM_HIGH_BYTES and not self._paused and self.transport is not None:
                self._paused = True
                self.transport.pause_reading()
            self._wake()

    def on_message_complete(self) -> None:
        # Read here: the parser has forgotten the message once the callback returns.
        self._keep_alive = self._parser.should_keep_alive()
        self._reply.ended = True
        self._finish()
        self._wake()

    # the exchange
    async def exchange(self, request: bytes, head_only: bool, stream_if: StreamIf | None = None) -> RawReply:
        assert self.transport is not None
        self._reply, self._received, self._head_only, self._keep_alive = _Reply(), False, head_only, False
        self._stream_if = stream_if
        self._done = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        await self._done
        reply = self._reply
        code, reason, headers = self._parser.get_status_code(), reply.reason.decode("latin-1"), tuple(reply.headers)
        if reply.streamed and not reply.ended:
            return RawReply(code, reason, headers, b"", BodyStream(self))
        # Most stream holds' bodies come with their head: whole already, nothing to stream.
        return RawReply(code, reason, headers, self.take() if reply.streamed else b"".join(reply.body))

    # a streamed body (BodyStream)
    def take(self) -> bytes:
        """What arrived of a streamed body and was not taken yet; reading resumes once little waits."""
        reply = self._reply
        chunk = b"".join(reply.body)
        reply.body.clear()
        reply.queued = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return chunk

    async def more(self) -> None:
        """Return once more of a streamed body (or its end, or an error) arrived."""
        reply = self._reply
        if reply.body or reply.ended or reply.error is not None:
            return
        self._more = asyncio.get_running_loop().create_future()
        try:
            await self._more
        finally:
            self._more = None

    def _wake(self) -> None:
        if self._more is not None and not self._more.done():
            self._more.set_result(None)

    @property
    def reusable(self) -> bool:
        return not self.closed and not self._head_only and self._keep_alive and not self._paused

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()

    def _finish(self) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def _fail(self, error: Exception) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_exception(error)


class BodyStream:
    """The rest of an origin's body, taken as it arrives; the connection goes back to its pool at the end.

    ``read`` answers the bytes that arrived since the last read (b"" at the end), waiting at most the
    client's timeout for more; ``close`` gives the connection up (closed unless the body had ended).
    """

    def __init__(self, protocol: _OriginProtocol) -> None:
        self._protocol: _OriginProtocol | None = protocol  # None once given up: a held stream keeps this object
        self._settle: Callable[[_OriginProtocol], None] = _OriginProtocol.close
        self._idle_timeout_s: float | None = None

    def settle_with(self, settle: Callable[[_OriginProtocol], None], idle_timeout_s: float) -> None:
        self._settle, self._idle_timeout_s = settle, idle_timeout_s

    async def read(self) -> bytes:
        """The next bytes of the body; b"" once it ended. Raises ``ConnectionError`` or ``TimeoutError``."""
        protocol = self._protocol
        if protocol is None:
            return b""
        reply = protocol._reply
        async with asyncio.timeout(self._idle_timeout_s):
            await protocol.more()
        if reply.body:
            return protocol.take()
        if reply.error is not None:
            self.close()
            raise reply.error
        self.close()  # ended
        return b""

    def close(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is None:
            return
        if protocol._reply.ended:
            self._settle(protocol)
        else:
            protocol.close()  # mid-body: the connection cannot carry another exchange


class OriginClient:
    """Requests to origins over pooled keep-alive connections (at most ``keep_idle`` idle per origin)."""

    # Enough for a burst of clients connecting at once (each is one origin request) to find a
    # kept connection next time instead of opening one.
    def __init__(self, tls: ssl.SSLContext, timeout_s: float, keep_idle: int = 256) -> None:
        self._tls = tls
        self._timeout_s = timeout_s
        self._keep_idle = keep_idle
        self._idle: dict[Endpoint, deque[_OriginProtocol]] = {}

    async def request(self, endpoint: Endpoint, method: str, target: str, headers: list[tuple[str, str]],
                      body: bytes, stream_if: StreamIf | None = None) -> RawReply:  # fmt: skip
        """One request; raises ``TimeoutError``, ``ssl.SSLError`` or ``OSError`` (``ConnectionError``).

        With ``stream_if``, a response it accepts answers at its head with ``rest`` to read (the timeout
        then covers the head, and each wait for more of the body)."""
        request = _encode(endpoint, method, target, headers, body)
        async with asyncio.timeout(self._timeout_s):
            while True:
                conn = self._take_idle(endpoint) or await self._connect(endpoint)
                try:
                    reply = await conn.exchange(request, method == "HEAD", stream_if)
                except ReusedConnectionClosed:
                    continue  # the origin dropped an idle connection: nothing was processed, use another
                except BaseException:
                    conn.close()
                    raise
                conn.used = True
                if reply.rest is not None:
                    reply.rest.settle_with(lambda done: self._give_back(endpoint, done), self._timeout_s)
                else:
                    self._give_back(endpoint, conn)
                return reply

    async def close(self) -> None:
        for pool in self._idle.values():
            for conn in pool:
                conn.close()
        self._idle.clear()

    def _take_idle(self, endpoint: Endpoint) -> _OriginProtocol | None:
        pool = self._idle.get(endpoint)
        while pool:
            conn = pool.pop()  # the most recently used: the least likely to have been closed
            if not conn.closed:
                return conn
        return None

    def _give_back(self, endpoint: Endpoint, conn: _OriginProtocol) -> None:
        pool = self._idle.setdefault(endpoint, deque())
        if conn.reusable and len(pool) < self._keep_idle:
            pool.append(conn)
        else:
            conn.close()

    async def _connect(self, endpoint: Endpoint) -> _OriginProtocol:
        loop = asyncio.get_running_loop()
        tls = endpoint.scheme == "https"
        hosts = [endpoint.host] if endpoint.allowed is None else await _judged_addresses(endpoint)
        failure: OSError = ConnectFailed(f"{endpoint.host} did not resolve")
        for host in hosts:  # a judged host's addresses in resolver order, as create_connection would try them
            try:
                _, protocol = await loop.create_connection(
                    _OriginProtocol,
                    host,
                    endpoint.port,
                    ssl=self._tls if tls else None,
                    server_hostname=(endpoint.server_hostname or endpoint.host) if tls else None,
                )
            except ssl.SSLCertVerificationError:
                raise  # its own answer: the certificate does not chain to a public CA
            except OSError as error:
                failure = ConnectFailed(str(error) or type(error).__name__)
                continue
            return protocol
        raise failure


async def _judged_addresses(endpoint: Endpoint) -> list[str]:
    """The addresses of ``endpoint.host`` a connection may go to: resolved here, once, and every one judged,
    so the name cannot resolve to another address between the judgement and the connection (DNS rebinding)."""
    assert endpoint.allowed is not None
    literal = ip_literal(endpoint.host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(endpoint.host, endpoint.port, type=socket.SOCK_STREAM)
        except OSError as error:
            raise ConnectFailed(f"{endpoint.host} did not resolve: {error}") from error
        addresses = [str(info[4][0]) for info in infos]
    refusal, judged = resolution_refusal(endpoint.host, endpoint.allowed, lambda _host: addresses)
    if refusal is not None:
        raise AddressRefused(refusal)
    return judged


def _encode(endpoint: Endpoint, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"{method} {target} HTTP/1.1"]
    has_host = False
    for name, value in headers:
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"header {name!r} holds a line break")
        has_host = has_host or name.lower() == "host"
        lines.append(f"{name}: {value}")
    if not has_host:
        default = 443 if endpoint.scheme == "https" else 80
        lines.append(f"Host: {endpoint.host}" + ("" if endpoint.port == default else f":{endpoint.port}"))
    if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
