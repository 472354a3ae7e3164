"""The broker's HTTP server: uvicorn's httptools protocol, with limits on a request's head.

Uvicorn's httptools protocol (as of 0.55) has no limit on a request's head: the parser gathers an
unterminated header line, or any number of headers, in memory, and one client sending 200 MiB of
header kept the event loop busy for everybody else. Here each request's head (request line and
headers) is refused with 431 beyond ``max_head_bytes`` or ``max_headers``, judged before the bytes
reach the parser, and with 408 when it has not arrived ``head_timeout_s`` after the request began
(a client trickling its headers). Bodies are the application's to time out (``broker.asgi.read_body``).

The cost on the hot path is an addition and a comparison per read while a head is arriving, and
one timer per request head.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_END = b"\r\n\r\n"
LINGER_S = 1.0  # after a refusal, how long the client's further bytes are read and dropped


@dataclass(frozen=True, slots=True)
class HeadLimits:
    max_head_bytes: int = 32 * 1024
    max_headers: int = 100
    head_timeout_s: float = 10.0


class _Head:
    """Where the current request's head has got: one slotted object, not six instance attributes.

    Six more attributes on uvicorn's protocol object grew its ``__dict__`` past a resize: 1.3 KiB more
    per idle connection (bench/broker.py: 21.7 against 20.4 KiB).
    """

    __slots__ = ("in_head", "bytes", "headers", "tail", "timer", "refused")

    def __init__(self) -> None:
        self.in_head = True  # until the current request's headers are complete
        self.bytes = 0
        self.headers = 0
        self.tail = b""  # the last bytes of the head so far, for a CRLFCRLF split across reads
        self.timer: asyncio.TimerHandle | None = None
        self.refused = False  # answered 431/408: whatever else arrives is dropped


# Between one request's head and the next there is nothing to track: every connection shares this
# one, so a connection held open after its head (an idle stream) keeps no head state of its own.
_BETWEEN_HEADS = _Head()
_BETWEEN_HEADS.in_head = False


class HeadRefused(Exception):
    """Raised inside the parser's header callback to stop parsing a head with too many headers."""


def limited_protocol(limits: HeadLimits) -> type[HttpToolsProtocol]:
    """Uvicorn's httptools protocol class, refusing request heads beyond ``limits``."""

    class LimitedHttpToolsProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._head = _Head()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._head.timer = self.loop.call_later(limits.head_timeout_s, self._head_too_slow)

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

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
            self._cancel_head_timer()
            self._head = _BETWEEN_HEADS
            super().on_headers_complete()

        def _cancel_head_timer(self) -> None:
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

        def _refuse(self, status: int, reason: str) -> None:
            """Answer ``status`` and end the connection; the rest of its bytes are never parsed.

            A lingering close, as web servers do it: the answer and a FIN go first, what the client still
            sends is read and dropped for ``LINGER_S``, then the connection closes. Closing at once, with
            the client's bytes unread, would reset it and could destroy the answer before it is read.
            """
            self._cancel_head_timer()
            self._head.in_head, self._head.refused = False, True
            body = f"{reason}\n".encode()
            head = (
                f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
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
