"""A held client connection: its bounded delivery queue and its byte counters."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from broker.config import ServiceConfig
from broker.events import Subject
from broker.publish import Format, Item


@dataclass(frozen=True, slots=True)
class Delivery:
    """One published item on its way to one connection, in the format that connection takes."""

    item: Item
    format: Format
    item_key: str  # this node's key of the published item: deliveries are counted per item


@dataclass(frozen=True, slots=True)
class Ending:
    """Why the broker itself ends a connection, and what a client still waiting is answered."""

    reason: str  # the metered close's reason
    status: int  # a long-poll client's answer, as a new request would get it
    message: str


@dataclass(eq=False)
class Connection:
    id: str
    service: ServiceConfig
    transport: str
    queue_size: int
    bytes_out: int = 0
    bytes_in: int = 0
    dropped: int = 0
    channels: set[str] = field(default_factory=set)
    queue: asyncio.Queue[Delivery] = field(init=False)
    who: Subject = field(init=False)
    _ended: asyncio.Future[Ending] | None = field(default=None, init=False, repr=False)
    _refresh: asyncio.Future[None] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(self.queue_size)
        self.who = Subject(self.service.account_id, self.service.service_id)  # once: the delivery path uses it

    @property
    def ended(self) -> asyncio.Future[Ending]:
        """Resolved when the broker ends the connection (its service is no longer served)."""
        if self._ended is None:
            self._ended = asyncio.get_running_loop().create_future()
        return self._ended

    def end(self, ending: Ending) -> None:
        """Ask the connection's hold to end itself (at once, whatever it is waiting for)."""
        if not self.ended.done():
            self.ended.set_result(ending)

    @property
    def refresh_due(self) -> asyncio.Future[None]:
        """Resolved when the broker wants the hold to ask its origin again (its channel is new on this node)."""
        if self._refresh is None:
            self._refresh = asyncio.get_running_loop().create_future()
        return self._refresh

    def want_refresh(self) -> None:
        if not self.refresh_due.done():
            self.refresh_due.set_result(None)

    def take_refresh(self) -> None:
        """The hold acted on the refresh: a later one may come."""
        self._refresh = None

    def offer(self, delivery: Delivery) -> bool:
        """Queue a delivery; a full queue (slow consumer) drops it, counted here and never as delivered."""
        try:
            self.queue.put_nowait(delivery)
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        return True

    def drain(self) -> list[Delivery]:
        """Everything queued, taken off the queue."""
        return [self.queue.get_nowait() for _ in range(self.queue.qsize())]

    def discard_queued(self) -> None:
        """Forget what is queued: the broker asks the origin for it instead (never counted as dropped)."""
        self.drain()

    def take_ready(self, first: Delivery, limit: int = 1000) -> list[Delivery]:
        """``first`` and whatever else is already queued: one write to the client for all of them."""
        batch = [first]
        while len(batch) < limit and not self.queue.empty():
            batch.append(self.queue.get_nowait())
        return batch
