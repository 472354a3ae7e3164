"""WebSocket clients, bridged to the origin with WebSocket-over-HTTP (one POST per batch of client events)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

from broker.asgi import Receive, Scope, Send, first_of, request_headers
from broker.exceptions import WsEventsError
from broker.grip import wsevents
from broker.grip.instructions import KeepAlive
from broker.grip.publish import WsMessageFormat
from broker.grip.wsevents import WsEvent, control_name
from broker.origin.client import OriginError, Origins, forwardable
from broker.services.model import ServiceConfig
from broker.transports.connection import Connection, Delivery
from broker.transports.held_request import HoldContext
from broker.transports.ignored import ignored, known_filters
from broker.usage.admission import RETRY_AFTER_S, MeteringRefused

# The client's handshake headers stay with the handshake, and Content-Type is the broker's to set
# (application/websocket-events); Connection-Id and Meta-* never pass (``forwardable``).
WS_REQUEST_DROP = frozenset(
    {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol",
     "sec-websocket-accept", "content-type"}
)  # fmt: skip


class OriginRefused(Exception):
    """The origin did not accept the connection (no OPEN) or answered badly."""


@dataclass
class WsSession:
    """One client socket: its origin-side state (meta, grip prefix, detached) and its connection."""

    service: ServiceConfig
    path: str
    origins: Origins
    base_headers: list[tuple[str, str]]
    conn: Connection
    meta: dict[str, str] = field(default_factory=dict)  # Set-Meta-* from the origin, sent back as Meta-*
    conn_meta: dict[str, str] = field(default_factory=dict)  # set-meta control messages (for filters)
    prefix: bytes | None = None
    detached: bool = False
    keep_alive: KeepAlive | None = None  # set by a keep-alive control message
    keep_alive_due: float | None = None  # mode=interval: when the next one is sent (loop time)
    delayed: tuple[bytes, str] | None = None  # send-delayed: content and message type, sent at ``delayed_due``
    delayed_due: float = 0.0
    close_code: int | None = None  # set when the origin or a publisher ends the socket

    async def call_origin(self, events: list[WsEvent]) -> list[WsEvent]:
        headers = [
            *self.base_headers,
            ("Content-Type", wsevents.CONTENT_TYPE),
            ("Connection-Id", self.conn.id),
            ("Sec-WebSocket-Extensions", "grip"),
            *((f"Meta-{k}", v) for k, v in self.meta.items()),
        ]
        reply = await self.origins.request(self.service, "POST", self.path, headers, wsevents.encode_events(events))
        if reply.code != 200:
            raise OriginRefused(f"origin answered {reply.code} to WebSocket-over-HTTP")
        for name, value in reply.headers:
            if name.lower().startswith("set-meta-"):
                self.meta[name[len("set-meta-") :].lower()] = value
        extensions = reply.header("Sec-WebSocket-Extensions")
        if extensions is not None:
            self.prefix = wsevents.grip_message_prefix(extensions)
        return wsevents.decode_events(reply.body)


async def websocket_session(ctx: HoldContext, origins: Origins, service: ServiceConfig, path: str,
                            scope: Scope, receive: Receive, send: Send, queue_size: int) -> None:  # fmt: skip
    """Accept a client only if the origin answers OPEN; then relay both ways until either side closes."""
    if (await receive())["type"] != "websocket.connect":
        return
    headers = [(k, v) for k, v in forwardable(request_headers(scope)) if k.lower() not in WS_REQUEST_DROP]
    conn = Connection(uuid.uuid4().hex, service, "websocket", queue_size)
    session = WsSession(service, path, origins, headers, conn)
    try:
        opening = await session.call_origin([WsEvent("OPEN")])
        if not opening or opening[0].type != "OPEN":
            raise OriginRefused("origin did not accept the WebSocket (no OPEN)")
    except (OriginError, OriginRefused, WsEventsError):
        await send({"type": "websocket.close", "code": 1011})
        return
    try:
        await ctx.meter.opened(conn)  # durable before the client learns it is connected
    except MeteringRefused as refused:  # the handshake is answered 503, as a held HTTP request is
        await _refuse_handshake(send, str(refused))
        return
    await send({"type": "websocket.accept"})
    reason = "client disconnected"
    try:
        await _apply(ctx, session, opening[1:], send)
        reason = await _run(ctx, session, receive, send)
    except (OriginError, OriginRefused, WsEventsError) as error:
        reason = f"origin error: {error}"
        await _close(send, 1011)
    except asyncio.CancelledError:
        reason = "shutdown"
        raise
    finally:
        ctx.hub.leave(conn)
        ctx.meter.closed(conn, reason)


async def _refuse_handshake(send: Send, text: str) -> None:
    """Answer the handshake with 503 and ``Retry-After`` (ASGI's websocket.http.response, which uvicorn has)."""
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"retry-after", str(RETRY_AFTER_S).encode())]
    await send({"type": "websocket.http.response.start", "status": 503, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": f"{text}\n".encode()})


async def _run(ctx: HoldContext, session: WsSession, receive: Receive, send: Send) -> str:
    conn = session.conn
    incoming = asyncio.ensure_future(receive())
    try:
        while session.close_code is None:
            timeout = _timeout(session)
            got = conn.ready()
            waited_from = asyncio.get_running_loop().time() if timeout is not None else 0.0
            done = await first_of(incoming, got, conn.ended, timeout=timeout)
            if conn.ended in done:
                ending = conn.ended.result()
                # 1008 policy violation: the service may no longer be served (not the origin's doing).
                await _close(send, 1008, ending.message[:120])
                return ending.reason
            if incoming in done:
                message = incoming.result()
                if message["type"] == "websocket.disconnect":
                    await _client_gone(session, message.get("code", 1005))
                    return "client disconnected"
                incoming = asyncio.ensure_future(receive())
                await _from_client(ctx, session, message, send)
            if got in done:
                await _deliver(ctx, session, conn.take(), send)
            if timeout is not None:
                await _timers(session, send, waited_from, idle=not done)
        return "closed"
    finally:
        incoming.cancel()


def _timeout(session: WsSession) -> float | None:
    """How long the socket may wait before a timer (keep-alive, send-delayed) is due; None without timers."""
    keep_alive, delayed = session.keep_alive, session.delayed
    if keep_alive is None and delayed is None:
        return None  # the common socket: no timer
    now, timeouts = asyncio.get_running_loop().time(), []
    if keep_alive is not None:
        due = session.keep_alive_due
        timeouts.append(float(keep_alive.timeout_s) if due is None else due - now)
    if delayed is not None:
        timeouts.append(session.delayed_due - now)
    return max(0.0, min(timeouts))


async def _timers(session: WsSession, send: Send, waited_from: float, idle: bool) -> None:
    """Nothing happened for ``_timeout`` since ``waited_from``: send what is due (the delayed message, a
    keep-alive: mode=interval on its schedule, idle after its timeout of quiet)."""
    now = asyncio.get_running_loop().time()
    if session.delayed is not None and now >= session.delayed_due - 0.01:
        await _flush_delayed(session, send)
    keep_alive = session.keep_alive
    if keep_alive is None:
        return
    if session.keep_alive_due is not None:  # interval: on its schedule, however busy the socket was
        if now < session.keep_alive_due - 0.01:
            return
        session.keep_alive_due = now + keep_alive.timeout_s
    elif not idle or now - waited_from < keep_alive.timeout_s - 0.01:
        return  # something happened, or woken for another timer
    await _send_message(send, session.conn, keep_alive.content, "binary" if keep_alive.binary else "text")


async def _flush_delayed(session: WsSession, send: Send) -> None:
    if session.delayed is not None:
        content, message_type = session.delayed
        session.delayed = None
        await _send_message(send, session.conn, content, message_type)


async def _send_message(send: Send, conn: Connection, content: bytes, message_type: str) -> None:
    """A message the origin asked for (not a delivery: bytes out only); ping and pong frames ASGI cannot send."""
    if message_type == "binary":
        await _send_bytes(send, conn, content)
    elif message_type == "text":
        await _send_text(send, conn, content)


async def _client_gone(session: WsSession, code: int) -> None:
    """Tell the origin: CLOSE with the client's code after a clean close, DISCONNECT after a lost one."""
    if session.detached:
        return
    event = wsevents.close_event(code) if code not in (1005, 1006) else WsEvent("DISCONNECT")
    try:
        await session.call_origin([event])
    except (OriginError, OriginRefused, WsEventsError):
        pass  # the client is gone either way; nothing to answer


async def _from_client(ctx: HoldContext, session: WsSession, message: dict[str, object] | object, send: Send) -> None:
    assert isinstance(message, dict)
    text, data = message.get("text"), message.get("bytes")
    payload = text.encode() if isinstance(text, str) else data if isinstance(data, bytes) else b""
    session.conn.bytes_in += len(payload)
    if session.detached:
        return
    event = WsEvent("TEXT" if isinstance(text, str) else "BINARY", payload)
    await _apply(ctx, session, await session.call_origin([event]), send)


async def _apply(ctx: HoldContext, session: WsSession, events: list[WsEvent], send: Send) -> None:
    """Act on the origin's events: messages to the client, control messages, CLOSE and DISCONNECT."""
    for event in events:
        content = event.content or b""
        if event.type == "TEXT" and session.prefix is not None and content.startswith(wsevents.CONTROL_PREFIX):
            try:
                control = wsevents.parse_control(content)
            except WsEventsError as error:  # ignored as Pushpin ignores it: the socket goes on
                ignored(session.service.service_id, "a control message", control_name(content), str(error))
                continue
            await _control(ctx, session, control, send)
        elif event.type in ("TEXT", "BINARY"):
            if session.prefix and content.startswith(session.prefix):
                content = content[len(session.prefix) :]
            await (_send_text if event.type == "TEXT" else _send_bytes)(send, session.conn, content)
        elif event.type in ("CLOSE", "DISCONNECT"):
            session.close_code = wsevents.close_code(event) or 1000 if event.type == "CLOSE" else 1011
            await _close(send, session.close_code)
            return


async def _control(ctx: HoldContext, session: WsSession, control: wsevents.Control, send: Send) -> None:
    if control.type == "subscribe" and control.channel:
        ctx.hub.subscribe(session.conn, control.channel, known_filters(session.service.service_id, control.filters))
        await ctx.hub.settled()
    elif control.type == "unsubscribe" and control.channel:
        ctx.hub.unsubscribe(session.conn, control.channel)
    elif control.type == "set-meta" and control.name:
        # Pushpin keeps this meta for subscription filters; the origin's Meta-* come from its Set-Meta-*.
        if control.value is None:
            session.conn_meta.pop(control.name, None)
        else:
            session.conn_meta[control.name] = control.value
        ctx.hub.set_meta(session.conn, session.conn_meta)
    elif control.type == "detach":
        session.detached = True
    elif control.type == "keep-alive":
        if control.timeout_s is None:  # no content: keep-alives off
            session.keep_alive = session.keep_alive_due = None
        else:
            session.keep_alive = KeepAlive(control.content, control.timeout_s, control.interval,
                                           control.message_type == "binary")  # fmt: skip
            interval = control.interval and control.message_type in ("text", "binary")
            session.keep_alive_due = asyncio.get_running_loop().time() + control.timeout_s if interval else None
            if control.message_type not in ("text", "binary"):
                session.keep_alive = None  # a ping or pong keep-alive: uvicorn pings the client itself
    elif control.type == "send-delayed" and control.timeout_s:
        await _flush_delayed(session, send)
        session.delayed = (control.content, control.message_type)
        session.delayed_due = asyncio.get_running_loop().time() + control.timeout_s
    elif control.type == "flush-delayed":
        await _flush_delayed(session, send)
    elif control.type == "close":
        session.close_code = 1000
        await _close(send, 1000)


async def _deliver(ctx: HoldContext, session: WsSession, batch: list[Delivery], send: Send) -> None:
    for delivery in batch:
        fmt = delivery.format
        assert isinstance(fmt, WsMessageFormat)
        if fmt.close:
            session.close_code = fmt.code or 1000
            await _close(send, session.close_code, fmt.reason)
            return
        if fmt.hint or fmt.frame:  # nothing a WebSocket client gets through ASGI: neither sent nor metered
            continue
        await (_send_bytes if fmt.binary else _send_text)(send, session.conn, fmt.content)
        ctx.meter.delivered(session.conn, delivery.item.channel, delivery.item_key, len(fmt.content))


async def _send_text(send: Send, conn: Connection, content: bytes) -> None:
    try:
        text, size = content.decode("utf-8"), len(content)
    except UnicodeDecodeError:
        # A text frame must be UTF-8: the bad sequences go out as U+FFFD, and the bytes billed are
        # the bytes sent, not the ones the origin or publisher gave.
        text = content.decode("utf-8", errors="replace")
        size = len(text.encode("utf-8"))
    await send({"type": "websocket.send", "text": text})
    conn.bytes_out += size


async def _send_bytes(send: Send, conn: Connection, content: bytes) -> None:
    await send({"type": "websocket.send", "bytes": content})
    conn.bytes_out += len(content)


async def _close(send: Send, code: int, reason: str = "") -> None:
    try:
        await send({"type": "websocket.close", "code": code, "reason": reason})
    except (OSError, RuntimeError):
        pass  # already closed by the client
