"""A held client connection: its bounded delivery queue and its byte counters."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from broker.grip.publish import Format, Item
from broker.services.model import ServiceConfig
from broker.usage.events import Subject


@dataclass(frozen=True, slots=True)
class Delivery:
    """One published item on its way to one connection, in the format that connection takes."""

    item: Item
    format: Format
    item_key: str  # this node's key of the published item: deliveries are counted per item
    # A filter dropped it for a hold that follows prev-ids: not sent, not billed, but the hold moves its
    # expected prev-id past it, as Pushpin does before its filters run (else the next item is a gap).
    skipped: bool = False
    # The content filter that could not render it (Pushpin's "filter error"): an HTTP hold ends on it, as
    # Pushpin's does (a stream ends, a long-poll is answered 502); never sent, never billed as delivered.
    unrenderable: str | None = None


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
    # When and as what it was metered open (monotonic time, transport): broker/metrics.py counts it so
    # for life, as its open event does, even if a long-poll's retry turns it into a stream.
    opened_at: float = 0.0
    opened_as: str = ""
    channels: set[str] = field(default_factory=set)
    who: Subject = field(init=False)
    # The queue is a deque and one future its hold waits on, resolved by ``wake``: a publish to
    # thousands of connections wakes each hold once, without asyncio.Queue's getter bookkeeping, and
    # the hub decides when (docs/decisions.md, "Fan-out writes").
    _pending: deque[Delivery] = field(default_factory=deque, init=False, repr=False)
    _ready: asyncio.Future[None] | None = field(default=None, init=False, repr=False)
    _ended: asyncio.Future[Ending] | None = field(default=None, init=False, repr=False)
    _refresh: asyncio.Future[None] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
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
        if len(self._pending) >= self.queue_size:
            self.dropped += 1
            return False
        self._pending.append(delivery)
        return True

    def wake(self) -> None:
        """Let a hold waiting in ``ready`` take what is queued (the hub wakes holds a slice at a time)."""
        ready = self._ready
        if ready is not None and self._pending and not ready.done():
            ready.set_result(None)

    @property
    def queued(self) -> int:
        return len(self._pending)

    def ready(self) -> asyncio.Future[None]:
        """Resolved while something is queued: the one thing a hold waits on for deliveries.

        A hold that gave up waiting (timeout, cancellation) simply asks again: a spent or cancelled
        future is replaced here.
        """
        ready = self._ready
        if ready is None or ready.cancelled() or (ready.done() and not self._pending):
            ready = self._ready = asyncio.get_running_loop().create_future()
        if self._pending and not ready.done():
            ready.set_result(None)
        return ready

    async def next_batch(self, limit: int = 1000) -> list[Delivery]:
        """Wait for deliveries; then take what is queued (up to ``limit``): one client write for all of them."""
        if not self._pending:
            await self.ready()
        return self.take(limit)

    def take(self, limit: int = 1000) -> list[Delivery]:
        """What is queued, oldest first (up to ``limit``), taken off the queue."""
        pending = self._pending
        if len(pending) <= limit:
            batch = list(pending)
            pending.clear()
            return batch
        return [pending.popleft() for _ in range(limit)]

    def drain(self) -> list[Delivery]:
        """Everything queued, taken off the queue."""
        return self.take(len(self._pending))

    def discard_queued(self) -> None:
        """Forget what is queued: the broker asks the origin for it instead (never counted as dropped)."""
        self._pending.clear()
