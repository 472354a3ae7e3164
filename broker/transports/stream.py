"""HTTP streaming and SSE (``stream`` holds), with Pushpin's recovery through the hold's next link.

A stream whose channel names a ``prev-id`` must come with ``Grip-Link: <uri>; rel=next``. When
the stream misses items (its first hold names a prev-id that is not the channel's last id, or
a published item's ``prev-id`` is not the id it expects), and whenever every channel of it has
been quiet for the link's ``timeout``, the broker GETs the next link with ``Grip-Last``, appends
the origin's answer to the stream and takes the hold in that answer as the stream's new one
(docs/decisions.md, "Reliable delivery"). Items queued meanwhile that do not follow it are dropped.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from broker.asgi import Send, encode_headers, first_of
from broker.exceptions import GripError
from broker.grip import filters
from broker.grip import instructions as grip
from broker.grip.instructions import Hold, Instruction, NextLink
from broker.grip.publish import HttpStreamFormat
from broker.grip.reliability import follows, grip_last, resolve_link, stale_channels
from broker.origin.client import OriginError, OriginReply, relayable
from broker.transports.connection import Connection, Delivery
from broker.transports.held_request import (
    ClientRequest,
    HoldContext,
    filtered,
    open_connection,
    release,
    subscribe,
)

# Pushpin retries a next link that failed 5 times, after 1 s, 2 s, 4 s ... plus up to 1 s at random.
RETRY_MAX = 5
RETRY_BASE_S = 1.0
MIN_LINK_TIMEOUT_S = 1  # a link's timeout=0 would have the broker fetch it in a loop
FINISHED = {"type": "http.response.body", "body": b"", "more_body": False}


@dataclass(frozen=True, slots=True)
class _Link:
    """The stream's next link: the origin path it names, and how long the stream may stay quiet."""

    path: str
    timeout_s: int


class StreamEnd(Exception):
    """The stream is over; ``reason`` is its metered close's."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def stream_transport(response: grip.OriginResponse) -> str:
    """SSE when the origin answers ``text/event-stream``, plain HTTP streaming otherwise."""
    return "sse" if grip.media_type(response.headers).lower() == "text/event-stream" else "http-stream"


async def hold_stream(ctx: HoldContext, conn: Connection, request: ClientRequest, instruction: Instruction,
                      disconnect: asyncio.Future[None], send: Send) -> None:  # fmt: skip
    """Stream: send the origin's response start, then append published ``http-stream`` content until
    closed or until ``disconnect`` (the client went away) is done."""
    assert instruction.hold is not None
    await open_connection(ctx, conn, instruction.hold.channels, instruction.hold.meta)
    pump = asyncio.ensure_future(_Stream(ctx, conn, request, send, disconnect).run(instruction))
    reason = "client disconnected"
    try:
        done = await first_of(disconnect, pump, conn.ended)
        if pump in done and pump.exception() is None:
            reason = pump.result()
        elif conn.ended in done and not disconnect.done():
            pump.cancel()
            reason = conn.ended.result().reason
            await send(FINISHED)
    except asyncio.CancelledError:
        reason = "shutdown"  # the server stopped with this stream still open
        raise
    finally:
        pump.cancel()
        if instruction.rest is not None:
            instruction.rest.close()  # the pump may have been cancelled before it took the body
        release(ctx, conn, reason)


class _Stream:
    """One held stream: its writer, and its subscription as the origin last described it."""

    # Slotted: one of these lives as long as each held stream (152 against 209 bytes with a __dict__).
    __slots__ = ("ctx", "conn", "send", "disconnect", "path", "hosts", "channels", "keep_alive", "keep_alive_due",
                 "link", "link_due", "active", "filters", "meta")  # fmt: skip

    def __init__(self, ctx: HoldContext, conn: Connection, request: ClientRequest, send: Send,
                 disconnect: asyncio.Future[None]) -> None:  # fmt: skip
        self.ctx, self.conn, self.send, self.disconnect = ctx, conn, send, disconnect
        self.path = request.path  # where the current instructions came from: links resolve against it
        self.hosts = _service_hosts(request)
        self.channels: dict[str, str | None] = {}  # channel -> the prev-id its next item must name
        self.keep_alive: grip.KeepAlive | None = None
        self.keep_alive_due: float | None = None  # Grip-Keep-Alive mode=interval: the next one's time
        self.link: _Link | None = None
        self.link_due: float | None = None
        self.active: set[str] = set()  # channels with an item since the link's timer started
        self.filters: frozenset[str] = frozenset()  # the hold's subscription filters (build-id: origin bodies too)
        self.meta: Mapping[str, str] = filters.NO_META  # the hold's Grip-Set-Meta, for those rewrites

    async def run(self, instruction: Instruction) -> str:
        """Write the stream until it ends; the close reason."""
        first, hold = instruction.response, instruction.hold
        assert hold is not None
        await self.send({"type": "http.response.start", "status": first.code,
                         "headers": encode_headers(relayable(first.headers))})  # fmt: skip
        try:
            self._take_filters(hold)
            await self._write(self._origin_body(first.body))
            if instruction.rest is not None:
                await self._relay(instruction.rest)
            await self._adopt(hold, instruction.link)
            backlog = await self._first_check(hold)
            while True:
                backlog = await self._deliver(backlog or await self._wait())
                if self.keep_alive_due is not None:
                    await self._interval_keep_alive()
        except StreamEnd as end:
            await self.send(FINISHED)
            return end.reason

    async def _relay(self, rest: grip.BodyRest) -> None:
        """The rest of the origin's first body, written as it arrives (what is published meanwhile waits in
        the connection's queue); an origin that fails or goes quiet mid-body ends the stream."""
        try:
            while chunk := await rest.read():
                await self._write(chunk)
        except (OSError, TimeoutError) as error:
            raise StreamEnd(f"origin error: {str(error) or type(error).__name__}") from None
        finally:
            rest.close()

    async def _first_check(self, hold: Hold) -> list[Delivery]:
        """Recover at once when the first hold names a prev-id that is not its channel's last id."""
        stale = stale_channels(self.conn.service.service_id, hold.channels, self.ctx.hub.last_ids)
        if not stale:
            return []
        self._forget(stale)
        return await self._recover()

    async def _wait(self) -> list[Delivery]:
        """The next published items; keep-alive content, or a recovery, when their timers run out first."""
        if self.link is None and self.keep_alive is None:  # the common stream: nothing but items to wait for
            return await self.conn.next_batch()
        timeout = self._timeout()
        if self.link is not None:
            return await self._wait_with_link(timeout)
        if await first_of(self.conn.ready(), timeout=timeout):
            return self.conn.take()
        assert self.keep_alive is not None
        if self.keep_alive_due is None:  # interval keep-alives are the run loop's
            await self._write(self.keep_alive.content)
        return []

    async def _wait_with_link(self, timeout: float | None) -> list[Delivery]:
        """As ``_wait``, and a stream with a next link also recovers when its channel is refreshed."""
        got = self.conn.ready()
        done = await first_of(got, self.conn.refresh_due, timeout=timeout)
        if got in done:
            return self.conn.take()
        if done:
            self.conn.take_refresh()
            return await self._recover()  # the channel is new here: ask what was published meanwhile
        # A timer may fire a hair before its time: without a keep-alive, only the link's timer ran.
        link_due = self.link_due is not None and asyncio.get_running_loop().time() >= self.link_due - 0.01
        if link_due or self.keep_alive is None:
            return await self._recover()  # quiet too long: ask the origin what the stream missed
        if self.keep_alive_due is None:  # interval keep-alives are the run loop's
            await self._write(self.keep_alive.content)
        return []

    async def _interval_keep_alive(self) -> None:
        """mode=interval: the keep-alive on its schedule, however busy the stream is."""
        assert self.keep_alive is not None and self.keep_alive_due is not None
        now = asyncio.get_running_loop().time()
        if now >= self.keep_alive_due - 0.01:
            self.keep_alive_due = now + self.keep_alive.timeout_s
            await self._write(self.keep_alive.content)

    def _timeout(self) -> float | None:
        if self.keep_alive_due is not None:
            timeouts = [max(0.0, self.keep_alive_due - asyncio.get_running_loop().time())]
        else:
            timeouts = [float(self.keep_alive.timeout_s)] if self.keep_alive else []
        if self.link_due is not None:
            timeouts.append(max(0.0, self.link_due - asyncio.get_running_loop().time()))
        return min(timeouts, default=None)

    async def _deliver(self, batch: list[Delivery]) -> list[Delivery]:
        """Write every item that follows in one send; on a gap, recover. What is left to deliver after that."""
        taken: list[Delivery] = []
        for delivery in batch:
            channel = delivery.item.channel
            if channel not in self.channels:
                continue  # the stream's latest hold dropped that channel
            if not follows(self.channels[channel], delivery.item):
                await self._send_counted(taken)
                self._forget((channel,))
                self.conn.discard_queued()  # anything after the gap is the origin's to answer now
                return await self._recover()
            if self.channels[channel] is not None:
                self.channels[channel] = delivery.item.id
            if delivery.skipped:
                continue  # a filter dropped it: only the prev-id moves on
            if delivery.unrenderable is not None:  # Pushpin 1.36 ends the stream (what came before it is sent)
                await self._send_counted(taken)
                raise StreamEnd(f"filter error: {delivery.unrenderable} cannot render the item")
            assert isinstance(delivery.format, HttpStreamFormat)
            if delivery.format.close:
                await self._send_counted(taken)
                raise StreamEnd("closed by publisher")
            if delivery.format.hint:  # hint/refresh: what is new is the next link's to answer (none: ignored)
                if self.link is None:
                    continue
                await self._send_counted(taken)
                self.conn.discard_queued()
                return await self._recover()
            taken.append(delivery)
        await self._send_counted(taken)
        return []

    async def _send_counted(self, taken: list[Delivery]) -> None:
        """One write for all of them; each is counted as delivered only if the client was still there."""
        body = b"".join(d.format.content for d in taken if isinstance(d.format, HttpStreamFormat))
        if not body:
            return
        await self.send({"type": "http.response.body", "body": body, "more_body": True})  # _write, inlined: hot
        self.conn.bytes_out += len(body)
        if self.disconnect.done():
            return
        conn, meter = self.conn, self.ctx.meter
        for d in taken:
            assert isinstance(d.format, HttpStreamFormat)
            meter.delivered(conn, d.item.channel, d.item_key, len(d.format.content))
        if self.link is None:
            return
        self.active.update(d.item.channel for d in taken)
        if self.active >= self.channels.keys():  # every channel is alive: no need to ask for a while
            self._restart_link_timer()

    async def _recover(self) -> list[Delivery]:
        """GET the next link (pages of it while the origin gives no hold), append the answers, adopt the hold."""
        while True:
            if self.link is None:  # _adopt refuses prev-ids without a link, so only a link timer gets here
                raise StreamEnd("origin error: no next link to recover from")
            path = self.link.path
            reply = await self._fetch(path)
            await self._write(self._origin_body(reply.body))
            try:
                instruction = grip.instruction_from_headers(reply.code, reply.reason, reply.headers, reply.body)
            except GripError as error:
                raise StreamEnd(f"origin error: {error}") from None
            self.path, hold = path, instruction.hold
            if hold is not None:
                if hold.mode is grip.HoldMode.RESPONSE:
                    raise StreamEnd("origin error: the next link answered with a response hold")
                await self._adopt(hold, instruction.link)
                return self._queued_that_follow()
            if instruction.link is None:
                raise StreamEnd("ended by origin")
            self.link = _Link(self._resolve(instruction.link), self.link.timeout_s)

    async def _fetch(self, path: str) -> OriginReply:
        """The next link's answer (2xx); retried as Pushpin does, then the stream ends."""
        assert self.ctx.origins is not None
        headers = tuple(grip_last(self.channels))
        for attempt in range(RETRY_MAX + 1):
            service = self.ctx.service_of(self.conn.service.service_id) or self.conn.service
            try:
                reply = await self.ctx.origins.shared_get(service, path, headers)
                if 200 <= reply.code < 300:
                    return reply
            except OriginError:
                pass
            if attempt < RETRY_MAX:
                await asyncio.sleep(RETRY_BASE_S * 2**attempt + random.random())
        raise StreamEnd("origin error: failed to retrieve next link")

    async def _adopt(self, hold: Hold, link: NextLink | None) -> None:
        """Take a stream hold's channels, prev-ids, keep-alive and next link as the stream's own."""
        wanted = {c.name: c.prev_id for c in hold.channels}
        for name in self.channels.keys() - wanted.keys():
            self.ctx.hub.unsubscribe(self.conn, name)
        if hold.meta:
            self.ctx.hub.set_meta(self.conn, dict(hold.meta))
        if filtered(hold.channels):
            self.ctx.hub.set_prev_ids(self.conn, wanted)  # the live prev-ids, as this stream moves them on
        for channel in hold.channels:
            if channel.name not in self.channels:
                subscribe(self.ctx, self.conn, channel)
        await self.ctx.hub.settled()
        self.channels, self.keep_alive = wanted, hold.keep_alive
        self._take_filters(hold)
        ka = hold.keep_alive
        self.keep_alive_due = asyncio.get_running_loop().time() + ka.timeout_s if ka and ka.interval else None
        self.link = _Link(self._resolve(link), max(MIN_LINK_TIMEOUT_S, link.timeout_s)) if link else None
        self._restart_link_timer()
        named = [name for name, prev_id in wanted.items() if prev_id is not None]
        if named and self.link is None:
            raise StreamEnd(f"origin error: channel {named[0]!r} specifies prev-id, but no next link found")

    def _take_filters(self, hold: Hold) -> None:
        self.filters = frozenset(name for channel in hold.channels for name in channel.filters)
        if hold.meta:
            self.meta = dict(hold.meta)

    def _origin_body(self, body: bytes) -> bytes:
        """The origin's own body as the hold's filters make it (build-id); one it cannot render ends the
        stream, as Pushpin ends it."""
        rendered = filters.proxy_content(self.filters, body, self.meta)
        if rendered is None:
            raise StreamEnd("origin error: filter error (build-id)")
        return rendered

    def _resolve(self, link: NextLink) -> str:
        try:
            return resolve_link(self.path, link.uri, self.hosts)
        except GripError as error:
            raise StreamEnd(f"origin error: {error}") from None

    def _restart_link_timer(self) -> None:
        self.active.clear()
        self.link_due = asyncio.get_running_loop().time() + self.link.timeout_s if self.link else None

    def _queued_that_follow(self) -> list[Delivery]:
        """What was published during the recovery, less the leading items the new hold does not follow."""
        queued = self.conn.drain()
        start = 0
        while start < len(queued) and not self._takes(queued[start]):
            start += 1
        return queued[start:]

    def _takes(self, delivery: Delivery) -> bool:
        channel = delivery.item.channel
        return channel in self.channels and follows(self.channels[channel], delivery.item)

    def _forget(self, channels: tuple[str, ...]) -> None:
        for name in channels:
            self.ctx.hub.last_ids.forget((self.conn.service.service_id, name))

    async def _write(self, body: bytes) -> None:
        if body:
            await self.send({"type": "http.response.body", "body": body, "more_body": True})
            self.conn.bytes_out += len(body)


def _service_hosts(request: ClientRequest) -> frozenset[str]:
    """The names an absolute next link may use: the client's Host and the origin's own names."""
    names = (urlsplit(f"//{request.host}").hostname, urlsplit(request.service.origin).hostname,
             request.service.origin_host)  # fmt: skip
    return frozenset(name.lower() for name in names if name)
