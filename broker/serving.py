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


class HeadRefused(Exception):
    """Raised inside the parser's header callback to stop parsing a head with too many headers."""


def limited_protocol(limits: HeadLimits) -> type[HttpToolsProtocol]:
    """Uvicorn's httptools protocol class, refusing request heads beyond ``limits``."""

    class LimitedHttpToolsProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._in_head = True  # until the current request's headers are complete
            self._head_bytes = 0
            self._header_count = 0
            self._tail = b""  # the last bytes of the head so far, for a CRLFCRLF split across reads
            self._head_timer: asyncio.TimerHandle | None = None
            self._refused = False  # answered 431/408: whatever else arrives is dropped

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._head_timer = self.loop.call_later(limits.head_timeout_s, self._head_too_slow)

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            self._unset_keepalive_if_required()
            if self._in_head:
                if self._head_bytes + len(data) > limits.max_head_bytes and not self._head_ends_within(data):
                    self._refuse(431, "Request header fields too large")
                    return
                self._head_bytes += len(data)
                self._tail = data[-3:]
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()
            except httptools.HttpParserError:
                if self._header_count > limits.max_headers:
                    self._refuse(431, "Too many request header fields")
                else:
                    self.logger.warning("Invalid HTTP request received.")
                    self.send_400_response("Invalid HTTP request received.")

        def _head_ends_within(self, data: bytes) -> bool:
            """Whether the head ends in ``data`` within the limit (a body may follow it in the same read)."""
            joined = self._tail + data
            end = joined.find(HEAD_END)
            return end >= 0 and self._head_bytes + end + len(HEAD_END) - len(self._tail) <= limits.max_head_bytes

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head, self._head_bytes, self._header_count, self._tail = True, 0, 0, b""
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(limits.head_timeout_s, self._head_too_slow)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._header_count += 1
            if self._header_count > limits.max_headers:
                raise HeadRefused
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._cancel_head_timer()
            super().on_headers_complete()

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_too_slow(self) -> None:
            self._head_timer = None
            if self._in_head and not self.transport.is_closing():
                if self._head_bytes:
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
            self._in_head, self._refused = False, True
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
