"""A tiny GRIP origin for `fanmeter up`: what a customer's backend answers behind the broker.

Plain ASGI, GRIP by headers (no library needed): ``/stream`` and ``/sse`` hold a stream on
the channel named by ``?ch=`` (default ``news``), ``/poll`` holds a long-poll for 30 s.
Serve it with ``uvicorn fanmeter.demo_origin:app``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]


def answer(path: str, channel: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body for one request to the demo origin."""
    if path == "/stream":
        return 200, [("Content-Type", "text/plain"), ("Grip-Hold", "stream"), ("Grip-Channel", channel)], b"welcome\n"
    if path == "/sse":
        headers = [("Content-Type", "text/event-stream"), ("Grip-Hold", "stream"), ("Grip-Channel", channel)]
        return 200, headers, b"event: welcome\ndata: {}\n\n"
    if path == "/poll":
        headers = [("Content-Type", "text/plain"), ("Grip-Hold", "response"), ("Grip-Channel", channel),
                   ("Grip-Timeout", "30")]  # fmt: skip
        return 200, headers, b"nothing new\n"
    return 200, [("Content-Type", "text/plain")], b"fanmeter demo origin: try /stream, /sse or /poll?ch=news\n"


async def app(scope: Scope, receive: Any, send: Any) -> None:
    """The ASGI entry point."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    query = parse_qs(scope.get("query_string", b"").decode())
    status, headers, body = answer(scope["path"], query.get("ch", ["news"])[0])
    encoded = [(k.encode(), v.encode()) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": encoded})
    await send({"type": "http.response.body", "body": body})
