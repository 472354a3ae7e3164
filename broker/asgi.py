"""Small helpers over raw ASGI messages (no framework: the broker's hot paths stay thin)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from broker.grip.instructions import Headers

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyTooLarge(Exception):
    """The request body is over the limit (answered 413)."""


class BodySlow(Exception):
    """The request body did not arrive in time (answered 408)."""


def request_headers(scope: Scope) -> Headers:
    return tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"])


def header(headers: Headers, name: str) -> str | None:
    lowered = name.lower()
    return next((v for k, v in headers if k.lower() == lowered), None)


def encode_headers(headers: Headers) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]


async def read_body(receive: Receive, limit: int, timeout_s: float | None = None) -> bytes:
    """The whole request body, refusing more than ``limit`` bytes without buffering the rest; with
    ``timeout_s``, refusing a body that has not arrived whole that long after its headers (``BodySlow``)."""
    if timeout_s is None:
        return await _read_body(receive, limit)
    try:
        async with asyncio.timeout(timeout_s):
            return await _read_body(receive, limit)
    except TimeoutError:
        raise BodySlow from None


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client went away while sending its body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


BODILESS = frozenset({204, 304})


async def respond(send: Send, code: int, body: bytes, headers: Headers = ()) -> None:
    """A complete response; ``Content-Length`` is computed here (none, and no body, for 204 and 304)."""
    if code in BODILESS:  # an origin's Grip-Status may name one over a body it sent
        body, all_headers = b"", tuple((k, v) for k, v in headers if k.lower() != "content-length")
    else:
        all_headers = (*headers, ("Content-Length", str(len(body))))
    await send({"type": "http.response.start", "status": code, "headers": encode_headers(all_headers)})
    await send({"type": "http.response.body", "body": body})


async def respond_text(send: Send, code: int, text: str) -> None:
    await respond(send, code, text.encode(), (("Content-Type", "text/plain; charset=utf-8"),))


async def respond_closing(send: Send, code: int, text: str) -> None:
    """A text answer that ends the connection: the request's body was not read to its end."""
    headers = (("Content-Type", "text/plain; charset=utf-8"), ("Connection", "close"))
    await respond(send, code, text.encode(), headers)


async def wait_disconnect(receive: Receive) -> None:
    """Return when the client goes away (ASGI sends ``http.disconnect`` once the body is read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def first_of(*awaitables: asyncio.Future[Any], timeout: float | None = None) -> set[asyncio.Future[Any]]:
    done, _ = await asyncio.wait(set(awaitables), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    return done
