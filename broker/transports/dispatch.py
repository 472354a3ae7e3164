"""Which hold a client's HTTP request becomes: relayed as it is, a long-poll, or a stream.

One request is followed here from the origin's first answer to its end: a response without a
hold is relayed; a ``response`` hold is a long-poll (``broker.transports.long_poll``); a
``stream`` hold is HTTP streaming or SSE (``broker.transports.stream``). A long-poll whose retry
the origin answered with a stream hold goes on as that stream, on the same connection.
"""

from __future__ import annotations

import asyncio

from broker.asgi import Receive, Send, respond, wait_disconnect
from broker.grip import instructions as grip
from broker.grip.instructions import Instruction
from broker.origin.client import relayable
from broker.transports.held_request import ClientRequest, HoldContext, new_connection
from broker.transports.long_poll import hold_response
from broker.transports.stream import hold_stream, stream_transport
from broker.usage.admission import RETRY_AFTER_S, MeteringRefused

# A hold the outbox cannot meter (broker/usage/admission.py) is answered this way instead.
REFUSED_HEADERS = (("Content-Type", "text/plain; charset=utf-8"), ("Retry-After", str(RETRY_AFTER_S)))


async def serve(ctx: HoldContext, request: ClientRequest, instruction: Instruction, receive: Receive, send: Send,
                queue_size: int) -> None:  # fmt: skip
    """Relay a response without a hold; hold the others as a long-poll or a stream."""
    hold, response = instruction.hold, instruction.response
    if hold is None:
        await respond(send, response.code, response.body, relayable(response.headers))
        return
    # One watcher for the whole request, however many holds it becomes (a long-poll whose retry
    # turns into a stream). A plain try, not a context manager: its frame would live as long as
    # the hold, 0.4 KiB more per idle connection.
    disconnect = asyncio.ensure_future(wait_disconnect(receive))
    try:
        if hold.mode is grip.HoldMode.RESPONSE:
            conn = new_connection(request, "long-poll", queue_size)
            streamed = await hold_response(ctx, conn, request, instruction, disconnect, send)
            if streamed is None:
                return
            instruction = streamed
            conn.transport = stream_transport(instruction.response)
        else:
            conn = new_connection(request, stream_transport(response), queue_size)
        await hold_stream(ctx, conn, request, instruction, disconnect, send)
    except MeteringRefused as refused:  # raised before the client got a byte: it is told to come back
        await respond(send, 503, f"{refused}\n".encode(), REFUSED_HEADERS)
    finally:
        disconnect.cancel()
