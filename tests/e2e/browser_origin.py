"""A GRIP origin for a real browser: a page, the SSE stream and the WebSocket it opens, with `gripcontrol`.

Served by uvicorn in a subprocess behind the broker, so the browser loads everything from the
broker's origin (no cross-origin request): ``/page?ch=<channel>`` is relayed as a plain answer,
``/events?ch=`` is an SSE stream hold whose first event is ``ready``, and ``/ws?ch=`` a
WebSocket-over-HTTP socket that subscribes to the channel and says ``welcome``. The page keeps what
each client received in ``window.received`` (``sse``: the data of every event, by type;
``ws``: every message) for the test to read.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from gripcontrol import (
    WebSocketContext,
    WebSocketEvent,
    create_grip_channel_header,
    decode_websocket_events,
    encode_websocket_events,
)

SSE_FIRST = b"event: ready\ndata: subscribed\n\n"
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fanmeter browser client</title></head>
<body><p id="state">connecting</p>
<script>
const channel = new URLSearchParams(location.search).get("ch");
const base = location.pathname.replace(/\\/page$/, "");
window.received = {sse: [], ws: [], wsOpen: false, sseOpen: false};
const events = new EventSource(`${base}/events?ch=${channel}`);
events.addEventListener("ready", (e) => {
  window.received.sse.push(["ready", e.data]);
  window.received.sseOpen = true;
});
events.onmessage = (e) => window.received.sse.push(["message", e.data]);
const socket = new WebSocket(`${location.origin.replace(/^http/, "ws")}${base}/ws?ch=${channel}`);
socket.onopen = () => { window.received.wsOpen = true; };
socket.onmessage = (e) => window.received.ws.push(e.data);
window.closeClients = () => { events.close(); socket.close(1000); };
document.getElementById("state").textContent = "opened";
</script></body></html>
"""


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
    channel = query.get("ch", "browser")
    if scope["path"] == "/page":
        status, out_headers, out_body = 200, [("Content-Type", "text/html; charset=utf-8")], PAGE.encode()
    elif scope["path"] == "/events":
        hold = [("Grip-Hold", "stream"), ("Grip-Channel", create_grip_channel_header(channel))]
        status, out_headers, out_body = 200, [("Content-Type", "text/event-stream"), *hold], SSE_FIRST
    elif scope["path"] == "/ws":
        status, out_headers, out_body = websocket_over_http(headers, body, channel)
    else:
        status, out_headers, out_body = 404, [("Content-Type", "text/plain")], b"no such path\n"
    await send({"type": "http.response.start", "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in out_headers]})  # fmt: skip
    await send({"type": "http.response.body", "body": out_body})


def websocket_over_http(headers: dict[str, str], body: bytes, channel: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """OPEN: accept, subscribe to ``channel``, say ``welcome``; a CLOSE is answered with a CLOSE."""
    context = WebSocketContext(headers["connection-id"], {}, decode_websocket_events(body))
    out: list[WebSocketEvent] = []
    if context.is_opening():
        context.accept()
        context.send_control(json.dumps({"type": "subscribe", "channel": channel}))
        context.send("welcome")
    while context.can_recv():
        if context.recv() is None:
            context.close()
            break
    if context.accepted:
        out.append(WebSocketEvent("OPEN"))
    out.extend(context.out_events)
    if context.closed:
        out.append(WebSocketEvent("CLOSE", (context.out_close_code or 1000).to_bytes(2, "big")))
    reply_headers = [("Content-Type", "application/websocket-events"), ("Sec-WebSocket-Extensions", "grip")]
    return 200, reply_headers, encode_websocket_events(out)
