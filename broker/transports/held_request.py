"""What every held HTTP request shares: the broker's context, the client's request, opening and closing.

``broker.transports.dispatch`` decides which hold a request becomes; long-polls are held in
``broker.transports.long_poll``, streams in ``broker.transports.stream``.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from broker.exceptions import GripError
from broker.fanout.hub import Hub
from broker.grip import instructions as grip
from broker.grip.instructions import Channel, Instruction
from broker.origin.client import Origins
from broker.services.model import ServiceConfig
from broker.transports.connection import Connection
from broker.transports.ignored import ignored, known_filters
from broker.usage.meter import Meter


def _no_service(_service_id: str) -> ServiceConfig | None:
    return None


@dataclass(frozen=True, slots=True)
class HoldContext:
    hub: Hub
    meter: Meter
    origins: Origins | None = None  # for asking the origin again (retries, next links)
    service_of: Callable[[str], ServiceConfig | None] = _no_service  # a service as currently configured


@dataclass(frozen=True, slots=True)
class ClientRequest:
    """The client's request as the origin got it, kept so the broker can ask the origin again."""

    service: ServiceConfig
    method: str
    path: str  # the origin path, with the query
    headers: tuple[tuple[str, str], ...]
    body: bytes
    host: str = ""  # the client's Host (a next link may name it)

    async def ask(self, ctx: HoldContext, extra: list[tuple[str, str]]) -> Instruction:
        """The origin's instructions for this request (with ``extra`` headers); transport and GRIP errors raise."""
        assert ctx.origins is not None
        service = ctx.service_of(self.service.service_id) or self.service
        reply = await ctx.origins.request(service, self.method, self.path, [*self.headers, *extra], self.body,
                                          grip.relays_as_it_comes)  # fmt: skip
        try:
            instruction = grip.instruction_from_response(reply.code, reply.reason, reply.headers, reply.body)
        except GripError:
            if reply.rest is not None:
                reply.rest.close()
            raise
        if reply.rest is not None:  # a stream hold's body, relayed as it comes (broker.transports.stream)
            instruction = dataclasses.replace(instruction, rest=reply.rest)
        for name in instruction.ignored:
            ignored(service.service_id, "the GRIP header", name)
        return instruction


def new_connection(request: ClientRequest, transport: str, queue_size: int) -> Connection:
    return Connection(uuid.uuid4().hex, request.service, transport, queue_size, bytes_in=len(request.body))


async def open_connection(ctx: HoldContext, conn: Connection, channels: tuple[Channel, ...],
                          meta: tuple[tuple[str, str], ...] = ()) -> None:  # fmt: skip
    """Meter the open (once per connection, however often the origin is asked) and subscribe."""
    if conn.id not in ctx.meter.open:
        await ctx.meter.opened(conn)
    if meta:
        ctx.hub.set_meta(conn, dict(meta))
    if filtered(channels):
        ctx.hub.set_prev_ids(conn, {c.name: c.prev_id for c in channels})
    for channel in channels:
        subscribe(ctx, conn, channel)
    await ctx.hub.settled()  # before the client sees anything: a publish after that reaches it


def filtered(channels: tuple[Channel, ...]) -> bool:
    """Whether a subscription of the hold carries filters: the hub then keeps the hold's prev-ids (build-id's
    variables, and where an item a filter drops must still move the hold's prev-id on)."""
    return any(c.filters for c in channels)


def subscribe(ctx: HoldContext, conn: Connection, channel: Channel) -> None:
    """Hold ``channel`` for ``conn``, with the filters of it the broker applies."""
    filters = known_filters(conn.service.service_id, channel.filters) if channel.filters else ()
    ctx.hub.subscribe(conn, channel.name, filters)


def release(ctx: HoldContext, conn: Connection, reason: str) -> None:
    ctx.hub.leave(conn)
    ctx.meter.closed(conn, reason)


def bad_gateway(error: Exception) -> str:
    """The 502 text for an origin that failed or sent instructions the broker cannot follow."""
    if isinstance(error, GripError):
        return f"Bad gateway: origin sent invalid GRIP instructions: {error}\n"
    return f"Bad gateway: {error}\n"
