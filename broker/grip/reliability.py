"""Pushpin's reliable delivery, as pure rules: the last id sent per channel, ordering by ``prev-id``,
and when a held request must ask its origin again (docs/decisions.md, "Reliable delivery").

The reference is Pushpin 1.36's handler (its sequencer, ``publishLastIds`` and HTTP sessions):
- Every item sent on a channel this node holds sets that channel's last id (an item without an
  id clears it). An item whose ``prev-id`` is not the last id waits, up to ``wait_s``, for the
  item it follows; then it is sent anyway. ``no-seq`` items skip that wait and leave the last id
  alone. An id seen on the channel within ``id_ttl_s`` is a duplicate and is dropped.
- A hold whose channel names a ``prev-id`` that is not the channel's last id has missed items
  (``stale_channels``); so does one that receives an item whose ``prev-id`` is not the one it
  expects (``follows``). Either way the broker forgets that last id and asks the origin again,
  telling it what the client has with ``Grip-Last`` (``grip_last``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from broker.exceptions import GripError
from broker.grip.instructions import Channel
from broker.grip.publish import Item

ChannelKey = tuple[str, str]  # (service_id, channel): services never share a channel

LAST_IDS_CAPACITY = 1_000_000  # Pushpin's bound on its last-id cache
PENDING_MAX = 100  # items waiting for their predecessor, per channel
DEFAULT_WAIT_S = 5.0  # Pushpin's message_wait
DEFAULT_ID_TTL_S = 60.0  # Pushpin's id_cache_ttl
_PLACEHOLDER = "origin.invalid"


class LastIds:
    """The id of the last item sent on each channel (Pushpin's ``publishLastIds``), oldest evicted first."""

    def __init__(self, capacity: int = LAST_IDS_CAPACITY) -> None:
        self._capacity = capacity
        self._ids: dict[ChannelKey, str] = {}

    def get(self, key: ChannelKey) -> str | None:
        return self._ids.get(key)

    def record(self, key: ChannelKey, item_id: str | None) -> None:
        """An item was sent: its id is now the channel's last; an item without an id leaves none known."""
        self._ids.pop(key, None)
        if item_id is None:
            return
        while len(self._ids) >= self._capacity:
            del self._ids[next(iter(self._ids))]
        self._ids[key] = item_id

    def forget(self, key: ChannelKey) -> None:
        self._ids.pop(key, None)

    def __len__(self) -> int:
        return len(self._ids)


@dataclass(frozen=True, slots=True)
class _Waiting:
    since: float
    item: Item


class Sequencer:
    """Put a node's published items in ``prev-id`` order before they reach its subscribers.

    ``add`` and ``expire`` return the items to send now, in order. Example: with last id ``1``,
    adding ``{id: 3, prev-id: 2}`` returns nothing (it waits); adding ``{id: 2, prev-id: 1}``
    then returns both, 2 before 3, and the last id becomes ``3``.
    """

    def __init__(self, last_ids: LastIds, wait_s: float = DEFAULT_WAIT_S, id_ttl_s: float = DEFAULT_ID_TTL_S,
                 pending_max: int = PENDING_MAX) -> None:  # fmt: skip
        self.last_ids = last_ids
        self._wait_s = wait_s
        self._id_ttl_s = id_ttl_s
        self._pending_max = pending_max
        self._waiting: dict[ChannelKey, dict[str, _Waiting]] = {}  # by the prev-id each item waits for
        self._seen: dict[tuple[ChannelKey, str], float] = {}  # (channel, id) -> forgotten at; in that order

    def add(self, key: ChannelKey, item: Item, now: float, seq: bool) -> list[Item]:
        """Items to send now; ``seq`` is False for a channel nobody here holds (no last id is kept for it)."""
        if self._duplicate(key, item, now):
            return []
        if not seq or item.no_seq:
            return [item]
        last = self.last_ids.get(key)
        if last is None or item.prev_id is None or item.prev_id == last:
            return self._send(key, item)
        waiting = self._waiting.setdefault(key, {})
        if item.prev_id not in waiting and len(waiting) < self._pending_max:
            waiting[item.prev_id] = _Waiting(now, item)
        return []  # a second item following the same id, or one too many, is dropped (as Pushpin does)

    def expire(self, now: float) -> list[tuple[ChannelKey, Item]]:
        """Send the items that waited ``wait_s`` for a predecessor that never came, oldest first."""
        due = sorted(
            ((w.since, key, prev) for key, waiting in self._waiting.items() for prev, w in waiting.items()
             if w.since <= now - self._wait_s),
            key=lambda entry: entry[0],
        )  # fmt: skip
        ready: list[tuple[ChannelKey, Item]] = []
        for _since, key, prev in due:
            waited = self._waiting.get(key, {}).pop(prev, None)
            if waited is not None:  # not already sent behind an earlier one
                ready.extend((key, item) for item in self._send(key, waited.item))
        self._waiting = {key: waiting for key, waiting in self._waiting.items() if waiting}
        return ready

    def clear(self, key: ChannelKey) -> None:
        """Drop what waits on a channel nobody holds any more."""
        self._waiting.pop(key, None)

    @property
    def waiting(self) -> int:
        return sum(len(waiting) for waiting in self._waiting.values())

    def _send(self, key: ChannelKey, item: Item) -> list[Item]:
        """``item``, then every waiting item that follows it in turn; each one's id becomes the last id."""
        ready = [item]
        self.last_ids.record(key, item.id)
        waiting = self._waiting.get(key)
        while waiting and ready[-1].id is not None and ready[-1].id in waiting:
            follower = waiting.pop(ready[-1].id).item
            ready.append(follower)
            self.last_ids.record(key, follower.id)
        if waiting is not None and not waiting:
            del self._waiting[key]
        return ready

    def _duplicate(self, key: ChannelKey, item: Item, now: float) -> bool:
        while self._seen:
            oldest, until = next(iter(self._seen.items()))
            if until > now:
                break
            del self._seen[oldest]
        if item.id is None or self._id_ttl_s <= 0:
            return False
        if (key, item.id) in self._seen:
            return True
        self._seen[(key, item.id)] = now + self._id_ttl_s
        return False


def stale_channels(service_id: str, channels: Iterable[Channel], last_ids: LastIds) -> tuple[str, ...]:
    """Channels of a new hold whose ``prev-id`` is not the last id sent on them: the hold missed items.

    Pushpin's rule: a channel is stale only when it names a prev-id and a last id is known and
    differs. ``ch; prev-id=4`` with last id ``5`` is stale; with no last id known it is not.
    """
    return tuple(
        c.name for c in channels
        if c.prev_id is not None and last_ids.get((service_id, c.name)) not in (None, c.prev_id)
    )  # fmt: skip


def follows(expected_prev_id: str | None, item: Item) -> bool:
    """Whether a hold expecting ``expected_prev_id`` may take ``item`` (no expectation takes anything).

    An item without a ``prev-id`` does not follow a hold that expects one, as in Pushpin.
    """
    return expected_prev_id is None or item.prev_id == expected_prev_id


def grip_last(prev_ids: Mapping[str, str | None]) -> list[tuple[str, str]]:
    """``Grip-Last: <channel>; last-id=<id>`` for every channel whose last id the client has."""
    return [("Grip-Last", f"{name}; last-id={prev}") for name, prev in prev_ids.items() if prev is not None]


def resolve_link(current: str, link: str, hosts: Collection[str]) -> str:
    """The origin path a next link names, resolved against the path it came from.

    A relative link is resolved as a browser would; an absolute one must name one of ``hosts``
    (the service's own names): the broker never follows a link to another server.

    >>> resolve_link("/feed?after=1", "?after=3", ())
    '/feed?after=3'
    """
    joined = urlsplit(urljoin(f"http://{_PLACEHOLDER}{current}", link))
    if joined.scheme not in ("http", "https") or (joined.hostname or "") not in {_PLACEHOLDER, *hosts}:
        raise GripError(f"Grip-Link {link!r} points outside the service's origin")
    return (joined.path or "/") + (f"?{joined.query}" if joined.query else "")
