"""Long-polls (``response`` holds): the first published ``http-response``, or the origin's own on timeout.

Long-polls follow Pushpin's retry: a hold that missed items (``broker.grip.reliability``) is not
held; the origin is asked the same request again with ``Grip-Last``, and its answer (another
hold or a plain response) is served on the same connection. An answer that holds a stream is
handed back to ``broker.transports.dispatch``, which streams it (``broker.transports.stream``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from broker.asgi import Send, first_of, respond, respond_text
from broker.exceptions import GripError
from broker.grip import instructions as grip
from broker.grip.instructions import Hold, Instruction, OriginResponse
from broker.grip.publish import HttpResponseFormat
from broker.grip.reliability import follows, grip_last, stale_channels
from broker.origin.client import OriginError, relayable
from broker.transports.connection import Connection, Delivery
from broker.transports.held_request import (
    ClientRequest,
    HoldContext,
    bad_gateway,
    filtered,
    open_connection,
    release,
    subscribe,
)


@dataclass(frozen=True, slots=True)
class Retry:
    """The hold missed items: ask the origin again, with ``Grip-Last`` saying what the client has."""

    headers: list[tuple[str, str]]


async def hold_response(ctx: HoldContext, conn: Connection, request: ClientRequest, instruction: Instruction,
                        disconnect: asyncio.Future[None], send: Send) -> Instruction | None:  # fmt: skip
    """Long-poll: answer with the first published ``http-response``, or the origin's response on timeout.

    Returns the stream hold a retry was answered with (the connection stays open for it), else None.
    """
    reason: str | None = "client disconnected"
    try:
        while instruction.hold is not None and instruction.hold.mode is grip.HoldMode.RESPONSE:
            outcome = await _hold_once(ctx, conn, instruction.hold, instruction.response, send, disconnect)
            if not isinstance(outcome, Retry):
                reason = outcome
                return None
            instruction = await request.ask(ctx, outcome.headers)
        if instruction.hold is None:
            await _relay(send, conn, instruction.response)
            reason = "recovered"  # the origin answered the retry itself
            return None
        reason = None  # the retry became a stream: its stream closes the connection with its own reason
        return instruction
    except (GripError, OriginError) as error:
        await respond_text(send, 502, bad_gateway(error))
        reason = f"origin error: {error}"
        return None
    except asyncio.CancelledError:
        reason = "shutdown"
        raise
    finally:
        if reason is not None:
            release(ctx, conn, reason)


async def _hold_once(ctx: HoldContext, conn: Connection, hold: Hold, timeout_reply: OriginResponse, send: Send,
                     disconnect: asyncio.Future[None]) -> str | Retry:  # fmt: skip
    """One response hold: the close reason once answered, or a ``Retry`` when it missed items."""
    expected = {c.name: c.prev_id for c in hold.channels}
    if hold.meta:
        ctx.hub.set_meta(conn, dict(hold.meta))
    for channel in hold.channels:  # subscribed and checked with no await between: no item slips past
        subscribe(ctx, conn, channel)
    stale = stale_channels(conn.service.service_id, hold.channels, ctx.hub.last_ids)
    if stale:
        return _retry(ctx, conn, stale, expected)
    await open_connection(ctx, conn, ())
    if filtered(hold.channels):
        ctx.hub.set_prev_ids(conn, expected)  # build-id's variables; a skipped item moves them on
    deadline = asyncio.get_running_loop().time() + hold.timeout_s
    while True:
        got = conn.ready()
        left = max(0.0, deadline - asyncio.get_running_loop().time())
        done = await first_of(disconnect, got, conn.ended, conn.refresh_due, timeout=left)
        if conn.ended in done:
            ending = conn.ended.result()
            await respond_text(send, ending.status, f"{ending.message}\n")
            return ending.reason
        if conn.refresh_due in done and got not in done:
            return _retry(ctx, conn, (), expected)  # the channel is new here: ask again, forgetting nothing
        if got not in done:
            break
        delivery = conn.take(1)[0]
        hinted = isinstance(delivery.format, HttpResponseFormat) and delivery.format.hint
        if hinted:  # hint/refresh: ask the origin again, forgetting nothing
            return _retry(ctx, conn, (), expected)
        name = delivery.item.channel
        if not follows(expected.get(name), delivery.item):
            return _retry(ctx, conn, (name,), expected)
        if delivery.unrenderable is not None:  # Pushpin 1.36 answers 502 ("filter error")
            text = f"Bad gateway: filter error: {delivery.unrenderable} cannot render the published response\n"
            await respond_text(send, 502, text)
            conn.bytes_out += len(text.encode())
            return f"filter error: {delivery.unrenderable} cannot render the item"
        if not delivery.skipped:
            await _answer(ctx, conn, delivery, send, disconnect, exposed(hold, timeout_reply))
            return "published"
        if expected.get(name) is not None:  # a filter dropped it: hold on, expecting what follows it
            expected[name] = delivery.item.id
    if disconnect in done:
        return "client disconnected"
    await _relay(send, conn, timeout_reply)
    return "timeout"


def _retry(ctx: HoldContext, conn: Connection, stale: tuple[str, ...], expected: dict[str, str | None]) -> Retry:
    """Forget the stale channels' last ids (so the next hold is taken as it is) and drop this hold."""
    for name in stale:
        ctx.hub.last_ids.forget((conn.service.service_id, name))
    ctx.hub.leave(conn)
    conn.discard_queued()  # anything else published meanwhile is the origin's to answer now
    conn.take_refresh()  # a refresh already due is served by this retry
    return Retry(grip_last(expected))


def exposed(hold: Hold, reply: OriginResponse) -> grip.Headers:
    """The origin's headers that ``Grip-Expose-Headers`` names, for the published answer (Pushpin)."""
    if not hold.expose:
        return ()
    return tuple((k, v) for k, v in relayable(reply.headers) if k.lower() in hold.expose)


async def _answer(ctx: HoldContext, conn: Connection, delivery: Delivery, send: Send,
                  disconnect: asyncio.Future[None], exposed: grip.Headers = ()) -> None:  # fmt: skip
    fmt = delivery.format
    assert isinstance(fmt, HttpResponseFormat)
    headers = fmt.headers
    if exposed:  # the origin's named headers, unless the published answer sets them itself
        published = {k.lower() for k, _ in headers}
        headers = (*headers, *((k, v) for k, v in exposed if k.lower() not in published))
    await respond(send, fmt.code, fmt.body, headers)
    conn.bytes_out += len(fmt.body)
    if not disconnect.done():
        ctx.meter.delivered(conn, delivery.item.channel, delivery.item_key, len(fmt.body))


async def _relay(send: Send, conn: Connection, response: OriginResponse) -> None:
    await respond(send, response.code, response.body, relayable(response.headers))
    conn.bytes_out += len(response.body)
