"""The HTTP server of the broker and the admin service: uvicorn's httptools protocol, with limits.

Uvicorn's httptools protocol (as of 0.55) has no limit on a request's head: the parser gathers an
unterminated header line, or any number of headers, in memory, and one client sending 200 MiB of
header kept the event loop busy for everybody else. Nor does it time a body: once the application
has answered, the rest of a body is parsed and dropped for as long as the client sends a byte now and
then (each byte restarts the keep-alive timer). Here, per connection:

- a request's head (request line and headers) is refused with 431 beyond ``max_head_bytes`` or
  ``max_headers``, judged before the bytes reach the parser, and with 408 when it has not arrived
  ``head_timeout_s`` after the request began (a client trickling its headers);
- a body must arrive whole within ``body_timeout_s`` of its headers. The application answers a body it
  is reading with 408 at that deadline itself (``broker.asgi.read_body``, ``billing.api.body_limit``);
  the server closes the connection at the deadline when the application has answered already, and
  ``BODY_GRACE_S`` later when it has not;
- a client address (an IPv6 client's /64) may hold ``max_connections_per_address`` connections at
  once; beyond, a new connection is answered 429 with ``Retry-After`` and closed, before any of its
  bytes are parsed. Addresses in ``exempt_networks`` (a proxy in front, loopback) are not counted.

The cost on the hot path is an addition and a comparison per read while a head is arriving, one timer
per request head and per request body, and a dictionary update per connection for its address.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from kernel.network_policy import IPNetwork

HEAD_END = b"\r\n\r\n"
LINGER_S = 1.0  # after a refusal, how long the client's further bytes are read and dropped
BODY_GRACE_S = 1.0  # past the body deadline, how long an application still reading it has to answer 408
ADDRESS_RETRY_AFTER_S = 5  # what a client over its connection limit is told to wait


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_head_bytes: int = 32 * 1024
    max_headers: int = 100
    head_timeout_s: float = 10.0
    body_timeout_s: float | None = None  # None: bodies are not timed by the server
    max_connections_per_address: int = 0  # 0: no limit
    exempt_networks: tuple[IPNetwork, ...] = ()


def address_key(host: str, exempt: tuple[IPNetwork, ...] = ()) -> str | None:
    """What a client address is counted under: the address, an IPv6 address's /64 (a client is given a
    whole /64, so counting single IPv6 addresses would limit nothing); None when it is not counted.

    >>> address_key("203.0.113.7"), address_key("2001:db8:1:2:aa::1"), address_key("::ffff:192.0.2.1")
    ('203.0.113.7', '2001:db8:1:2::/64', '192.0.2.1')
    >>> address_key("127.0.0.1", (ipaddress.ip_network("127.0.0.0/8"),)) is None
    True
    """
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(host)
    except ValueError:
        return host  # a Unix socket's peer name or the like: counted as it is
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in network for network in exempt):
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class AddressCounts:
    """Connections open per client address on one server, and how many were refused over the limit."""

    def __init__(self, limit: int, exempt: tuple[IPNetwork, ...] = ()) -> None:
        self.limit = limit
        self.exempt = exempt
        self.open: dict[str, int] = {}
        self.refused = 0
        # The key each counted connection (its protocol object) gives back when it ends. Kept here, not
        # as an attribute of uvicorn's protocol: one more there grows every connection's __dict__ past a
        # resize (1.3 KiB per idle connection, bench/broker.py), an entry here only counted ones.
        self.keys: dict[object, str] = {}
        # A client's key is worked out once (ipaddress parsing costs microseconds), then looked up by host.
        self._key_of = functools.lru_cache(maxsize=4096)(functools.partial(address_key, exempt=exempt))

    def enter(self, host: str | None) -> tuple[bool, str | None]:
        """(admitted, the key to ``leave`` with later, or None when nothing was counted)."""
        if not self.limit or host is None:
            return True, None
        key = self._key_of(host)
        if key is None:
            return True, None
        count = self.open.get(key, 0)
        if count >= self.limit:
            self.refused += 1
            return False, None
        self.open[key] = count + 1
        return True, key

    def leave(self, key: str) -> None:
        left = self.open[key] - 1
        if left > 0:
            self.open[key] = left
        else:
            del self.open[key]


class _Head:
    """Where the current request's head (then body) has got: one slotted object, not six instance attributes.

    Six more attributes on uvicorn's protocol object grew its ``__dict__`` past a resize: 1.3 KiB more
    per idle connection (bench/broker.py: 21.7 against 20.4 KiB).
    """

    __slots__ = ("in_head", "bytes", "headers", "tail", "timer", "refused", "body_late")

    def __init__(self) -> None:
        self.in_head = True  # until the current request's headers are complete
        self.bytes = 0
        self.headers = 0
        self.tail = b""  # the last bytes of the head so far, for a CRLFCRLF split across reads
        self.timer: asyncio.TimerHandle | None = None  # the head's deadline, then the body's
        self.refused = False  # answered 431/408/429: whatever else arrives is dropped
        self.body_late = False  # the body's deadline passed while the application had not answered


# Between one request's head and the next there is nothing to track: every connection shares this
# one, so a connection held open after its head (an idle stream) keeps no head state of its own.
_BETWEEN_HEADS = _Head()
_BETWEEN_HEADS.in_head = False


class HeadRefused(Exception):
    """Raised inside the parser's header callback to stop parsing a head with too many headers."""


def declares_body(raw_headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a request says a body follows (``Content-Length`` above 0, or ``Transfer-Encoding``).

    ``raw_headers`` are uvicorn's: names in lowercase.
    """
    for name, value in raw_headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"", b"0")):
            return True
    return False


def limited_protocol(limits: HttpLimits, addresses: AddressCounts | None = None) -> type[HttpToolsProtocol]:
    """Uvicorn's httptools protocol class, refusing what goes beyond ``limits``.

    ``addresses`` counts the connections per client address (one per server; made from ``limits``
    when not given, pass one to read its counts).
    """
    counts = addresses or AddressCounts(limits.max_connections_per_address, limits.exempt_networks)

    class LimitedHttpToolsProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._head = _Head()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            admitted, key = counts.enter(self.client[0] if self.client else None)
            if not admitted:
                self._refuse(429, "Too many connections from this address", ADDRESS_RETRY_AFTER_S)
                return
            if key is not None:
                counts.keys[self] = key
            self._head.timer = self.loop.call_later(limits.head_timeout_s, self._head_too_slow)

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_timer()
            key = counts.keys.pop(self, None) if counts.keys else None
            if key is not None:
                counts.leave(key)
            super().connection_lost(exc)

        def handle_websocket_upgrade(self) -> None:
            """The WebSocket protocol takes the connection over: it gives the address back when it ends."""
            self._cancel_timer()
            key = counts.keys.pop(self, None) if counts.keys else None
            super().handle_websocket_upgrade()
            if key is not None:
                _release_on_loss(self.transport.get_protocol(), lambda: counts.leave(key))

        def data_received(self, data: bytes) -> None:
            head = self._head
            if head.refused:
                return
            self._unset_keepalive_if_required()
            if head.in_head:
                if head.bytes + len(data) > limits.max_head_bytes and not self._head_ends_within(data):
                    self._refuse(431, "Request header fields too large")
                    return
                head.bytes += len(data)
                head.tail = data[-3:]
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()
            except httptools.HttpParserError:
                if head.headers > limits.max_headers:
                    self._refuse(431, "Too many request header fields")
                else:
                    self.logger.warning("Invalid HTTP request received.")
                    self.send_400_response("Invalid HTTP request received.")

        def _head_ends_within(self, data: bytes) -> bool:
            """Whether the head ends in ``data`` within the limit (a body may follow it in the same read)."""
            head = self._head
            joined = head.tail + data
            end = joined.find(HEAD_END)
            return end >= 0 and head.bytes + end + len(HEAD_END) - len(head.tail) <= limits.max_head_bytes

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._head is _BETWEEN_HEADS:
                self._head = _Head()
            else:  # the connection's first request: its head and timer began with the connection
                head = self._head
                head.in_head, head.bytes, head.headers, head.tail = True, 0, 0, b""
            if self._head.timer is None:
                self._head.timer = self.loop.call_later(limits.head_timeout_s, self._head_too_slow)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._head.headers += 1
            if self._head.headers > limits.max_headers:
                raise HeadRefused
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._cancel_timer()
            if limits.body_timeout_s is not None and declares_body(self.headers):
                body = self._head = _Head()  # the body's state: its deadline
                body.in_head = False
                body.timer = self.loop.call_later(limits.body_timeout_s, self._body_too_slow)
            else:
                self._head = _BETWEEN_HEADS
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            if self._head.timer is not None and not self._head.in_head:
                self._cancel_timer()
                self._head = _BETWEEN_HEADS

        def _cancel_timer(self) -> None:
            if self._head.timer is not None:
                self._head.timer.cancel()
                self._head.timer = None

        def _head_too_slow(self) -> None:
            self._head.timer = None
            if self._head.in_head and not self.transport.is_closing():
                if self._head.bytes:
                    self._refuse(408, "Request headers not received in time")
                else:
                    self.transport.close()  # connected and never sent a byte: nothing to answer

        def _body_too_slow(self) -> None:
            """The body is late: close now if it has been answered, else after the application's own 408."""
            body = self._head
            body.timer = None
            cycle = self.cycle
            if self.transport.is_closing():
                return
            if body.body_late or cycle is None or cycle.response_complete:
                self.transport.close()
            else:
                body.body_late = True
                body.timer = self.loop.call_later(BODY_GRACE_S, self._body_too_slow)

        def _refuse(self, status: int, reason: str, retry_after_s: int | None = None) -> None:
            """Answer ``status`` and end the connection; the rest of its bytes are never parsed.

            A lingering close, as web servers do it: the answer and a FIN go first, what the client still
            sends is read and dropped for ``LINGER_S``, then the connection closes. Closing at once, with
            the client's bytes unread, would reset it and could destroy the answer before it is read.
            """
            self._cancel_timer()
            self._head = _Head()  # never the shared one: it is marked refused
            self._head.in_head, self._head.refused = False, True
            body = f"{reason}\n".encode()
            retry = f"retry-after: {retry_after_s}\r\n" if retry_after_s is not None else ""
            head = (
                f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
                f"content-length: {len(body)}\r\n{retry}connection: close\r\n\r\n"
            )
            transport = self.transport
            if transport.is_closing():
                return
            transport.write(head.encode() + body)
            if transport.can_write_eof():
                transport.write_eof()
                self.loop.call_later(LINGER_S, transport.close)
            else:
                transport.close()

    return LimitedHttpToolsProtocol


def _release_on_loss(protocol: Any, release: Any) -> None:
    """Call ``release`` once when ``protocol`` (the WebSocket protocol uvicorn switched to) loses its connection."""
    lost = protocol.connection_lost

    def connection_lost(exc: Exception | None) -> None:
        release()
        lost(exc)

    protocol.connection_lost = connection_lost
