"""Request bodies have a size limit, enforced before authentication, routing or parsing (413).

A body whose declared ``Content-Length`` is over the limit is refused at once, unread; a body
without one (chunked) is counted while it streams in and refused the moment it passes the limit,
so no route ever buffers more than the limit (an unauthenticated 300 MiB POST was buffered whole
before a 422). The limit is ``FANMETER_MAX_BODY_BYTES`` (1 MiB) for every route but
``POST /v1/events``, which takes event batches up to ``FANMETER_MAX_EVENTS_BODY_BYTES`` (10 MiB).

A body must also arrive whole within ``FANMETER_ADMIN_BODY_TIMEOUT_SECONDS`` (30 s) of the request's
start: a body trickled a byte at a time is answered 408 and its connection closed, so a slow client
holds no worker for longer (the HTTP server, ``kernel.http_limits``, closes a body still arriving a
second after that, whatever the route did).

A client that goes away mid-body is logged in one line, with no traceback: it is the client's
doing, not a fault of the service.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("billing.api")


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the limit; FastAPI answers it as a 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the {limit:,}-byte limit")


class BodySlow(HTTPException):
    """Raised from ``receive`` when the body has not arrived whole in time; answered 408, connection closed."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            408, f"the request body did not arrive within {timeout_s:g} s", headers={"Connection": "close"}
        )


class BodyLimit:
    """A plain ASGI middleware (no task group per request, unlike ``BaseHTTPMiddleware``)."""

    def __init__(
        self, app: ASGIApp, default_limit: int, limits: Mapping[tuple[str, str], int], body_timeout_s: float = 30.0
    ) -> None:
        self.app = app
        self.default_limit = default_limit
        self.limits = dict(limits)  # (method, path) -> limit
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get((scope["method"], scope["path"].rstrip("/")), self.default_limit)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse(scope, receive, send, BodyTooLarge(limit))
            return
        received = 0
        started = False
        body_done = False  # once the body is whole, receive only waits for a disconnect: untimed
        deadline = asyncio.get_running_loop().time() + self.body_timeout_s

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodySlow(self.body_timeout_s) from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except (BodyTooLarge, BodySlow) as refused:  # raised where no route turned it into a response
            if started:
                raise
            await _refuse(scope, receive, send, refused)
        except ClientDisconnect:
            log.warning(
                "client went away before sending the whole request body: %s %s (%d bytes received)",
                scope["method"],
                scope["path"],
                received,
            )


async def _refuse(scope: Scope, receive: Receive, send: Send, error: BodyTooLarge | BodySlow) -> None:
    response = JSONResponse({"detail": error.detail}, status_code=error.status_code, headers={"Connection": "close"})
    await response(scope, receive, send)
