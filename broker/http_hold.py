"""Held HTTP requests: long-poll (``response`` hold) and HTTP streaming / SSE (``stream`` hold)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from broker.asgi import Receive, Send, encode_headers, first_of, respond, respond_text, wait_disconnect
from broker.connection import Connection, Delivery
from broker.grip import Hold, OriginResponse
from broker.hub import Hub
from broker.meter import Meter
from broker.origin import relayable
from broker.publish import HttpResponseFormat, HttpStreamFormat


@dataclass(frozen=True, slots=True)
class HoldContext:
    hub: Hub
    meter: Meter


def stream_transport(response: OriginResponse) -> str:
    """SSE when the origin answers ``text/event-stream``, plain HTTP streaming otherwise."""
    content_type = next((v for k, v in response.headers if k.lower() == "content-type"), "")
    return "sse" if content_type.split(";")[0].strip().lower() == "text/event-stream" else "http-stream"


async def _subscribe(ctx: HoldContext, conn: Connection, hold: Hold) -> None:
    await ctx.meter.opened(conn)
    for channel in hold.channels:
        ctx.hub.subscribe(conn, channel.name)
    await ctx.hub.settled()  # before the client sees anything: a publish after that reaches it


def _release(ctx: HoldContext, conn: Connection, reason: str) -> None:
    ctx.hub.leave(conn)
    ctx.meter.closed(conn, reason)


async def hold_response(ctx: HoldContext, conn: Connection, hold: Hold, timeout_reply: OriginResponse,
                        receive: Receive, send: Send) -> None:  # fmt: skip
    """Long-poll: answer with the first published ``http-response``, or the origin's response on timeout."""
    await _subscribe(ctx, conn, hold)
    disconnect = asyncio.ensure_future(wait_disconnect(receive))
    got = asyncio.ensure_future(conn.queue.get())
    reason = "timeout"
    try:
        done = await first_of(disconnect, got, conn.ended, timeout=hold.timeout_s)
        if conn.ended in done:
            ending = conn.ended.result()
            await respond_text(send, ending.status, f"{ending.message}\n")
            reason = ending.reason
        elif got in done:
            delivery: Delivery = got.result()
            assert isinstance(delivery.format, HttpResponseFormat)
            fmt = delivery.format
            await respond(send, fmt.code, fmt.body, fmt.headers)
            conn.bytes_out += len(fmt.body)
            if not disconnect.done():
                ctx.meter.delivered(conn, delivery.item.channel, delivery.item_key, len(fmt.body))
            reason = "published"
        elif disconnect in done:
            reason = "client disconnected"
        else:
            await respond(send, timeout_reply.code, timeout_reply.body, relayable(timeout_reply.headers))
            conn.bytes_out += len(timeout_reply.body)
    except asyncio.CancelledError:
        reason = "shutdown"
        raise
    finally:
        got.cancel()
        disconnect.cancel()
        _release(ctx, conn, reason)


async def hold_stream(ctx: HoldContext, conn: Connection, hold: Hold, first: OriginResponse,
                      receive: Receive, send: Send) -> None:  # fmt: skip
    """Stream: send the origin's response start, then append published ``http-stream`` content until closed."""
    await _subscribe(ctx, conn, hold)
    disconnect = asyncio.ensure_future(wait_disconnect(receive))
    pump = asyncio.ensure_future(_pump(ctx, conn, hold, first, send, disconnect))
    reason = "client disconnected"
    try:
        done = await first_of(disconnect, pump, conn.ended)
        if pump in done and pump.exception() is None and pump.result():
            reason = "closed by publisher"
        elif conn.ended in done and not disconnect.done():
            pump.cancel()
            reason = conn.ended.result().reason
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        reason = "shutdown"  # the server stopped with this stream still open
        raise
    finally:
        pump.cancel()
        disconnect.cancel()
        _release(ctx, conn, reason)


async def _pump(ctx: HoldContext, conn: Connection, hold: Hold, first: OriginResponse, send: Send,
                disconnect: asyncio.Future[None]) -> bool:  # fmt: skip
    """Write the stream: one plain ``queue.get`` per wake-up keeps fan-out cheap. True when a publisher closed it."""
    start = {"type": "http.response.start", "status": first.code, "headers": encode_headers(relayable(first.headers))}
    await send(start)
    await _write(send, conn, first.body)
    keep_alive = hold.keep_alive
    while True:
        if keep_alive is None:
            delivery = await conn.queue.get()
        else:
            try:
                delivery = await asyncio.wait_for(conn.queue.get(), keep_alive.timeout_s)
            except TimeoutError:
                await _write(send, conn, keep_alive.content)
                continue
        if await _deliver_batch(ctx, conn, conn.take_ready(delivery), send, disconnect):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return True


async def _deliver_batch(ctx: HoldContext, conn: Connection, batch: list[Delivery], send: Send,
                         disconnect: asyncio.Future[None]) -> bool:  # fmt: skip
    """Write every ready delivery in one send; count each one the client write accepted. True on close."""
    counted: list[Delivery] = []
    closing = False
    for delivery in batch:
        assert isinstance(delivery.format, HttpStreamFormat)
        if delivery.format.close:
            closing = True
            break
        counted.append(delivery)
    body = b"".join(d.format.content for d in counted if isinstance(d.format, HttpStreamFormat))
    if body:
        await _write(send, conn, body)
        if not disconnect.done():
            for d in counted:
                assert isinstance(d.format, HttpStreamFormat)
                ctx.meter.delivered(conn, d.item.channel, d.item_key, len(d.format.content))
    return closing


async def _write(send: Send, conn: Connection, body: bytes) -> None:
    if body:
        await send({"type": "http.response.body", "body": body, "more_body": True})
        conn.bytes_out += len(body)
