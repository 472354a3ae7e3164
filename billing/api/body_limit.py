"""Request bodies have a size limit, enforced before authentication, routing or parsing (413).

A body whose declared ``Content-Length`` is over the limit is refused at once, unread; a body
without one (chunked) is counted while it streams in and refused the moment it passes the limit,
so no route ever buffers more than the limit (an unauthenticated 300 MiB POST was buffered whole
before a 422). The limit is ``FANMETER_MAX_BODY_BYTES`` (1 MiB) for every route but
``POST /v1/events``, which takes event batches up to ``FANMETER_MAX_EVENTS_BODY_BYTES`` (10 MiB).

A client that goes away mid-body is logged in one line, with no traceback: it is the client's
doing, not a fault of the service.
"""

from __future__ import annotations

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


class BodyLimit:
    """A plain ASGI middleware (no task group per request, unlike ``BaseHTTPMiddleware``)."""

    def __init__(self, app: ASGIApp, default_limit: int, limits: Mapping[tuple[str, str], int]) -> None:
        self.app = app
        self.default_limit = default_limit
        self.limits = dict(limits)  # (method, path) -> limit

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

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
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
        except BodyTooLarge as too_large:  # raised where no route turned it into a response
            if started:
                raise
            await _refuse(scope, receive, send, too_large)
        except ClientDisconnect:
            log.warning(
                "client went away before sending the whole request body: %s %s (%d bytes received)",
                scope["method"],
                scope["path"],
                received,
            )


async def _refuse(scope: Scope, receive: Receive, send: Send, error: BodyTooLarge) -> None:
    response = JSONResponse({"detail": error.detail}, status_code=413, headers={"Connection": "close"})
    await response(scope, receive, send)
