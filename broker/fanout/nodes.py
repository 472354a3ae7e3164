"""Getting published items to subscribers: this node only, or every node through Redis pub/sub.

With Redis each node subscribes to a Redis channel per (service, channel) its clients hold,
and the publish API publishes each item there instead of delivering it itself, so a publish
to any node reaches clients on all nodes exactly once each.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, NamedTuple, Protocol

import redis.asyncio as aioredis

from broker.fanout.hub import Hub
from broker.grip.publish import Item, parse_publish_body
from broker.grip.reliability import ChannelKey

REDIS_PREFIX = "fanmeter:channel:"
logger = logging.getLogger(__name__)


class _Change(NamedTuple):
    """A subscription change for the Redis connection: ``subscribe`` or ``unsubscribe``, and its Redis channel."""

    action: str
    channel: str


class Fanout(Protocol):
    async def start(self) -> None: ...
    async def publish(self, service_id: str, items: tuple[Item, ...]) -> None: ...
    async def stop(self) -> None: ...


class LocalFanout:
    """In-process delivery (the embedded default)."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    async def start(self) -> None:
        return None

    async def publish(self, service_id: str, items: tuple[Item, ...]) -> None:
        self._hub.deliver(service_id, items)

    async def stop(self) -> None:
        return None


def redis_channel(key: ChannelKey) -> str:
    service_id, channel = key
    return f"{REDIS_PREFIX}{len(service_id)}:{service_id}:{channel}"


class RedisFanout:
    """Cross-node delivery through Redis pub/sub."""

    def __init__(self, hub: Hub, url: str) -> None:
        self._hub = hub
        self._redis: aioredis.Redis = aioredis.Redis.from_url(url)
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._changes: asyncio.Queue[_Change] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = asyncio.Event()
        hub.on_first = lambda key: self._changes.put_nowait(_Change("subscribe", redis_channel(key)))
        hub.on_last = lambda key: self._changes.put_nowait(_Change("unsubscribe", redis_channel(key)))
        hub.settle = self._changes.join

    async def start(self) -> None:
        await self._redis.ping()
        # A placeholder subscription keeps the pub/sub connection in listening mode.
        await self._pubsub.subscribe(f"{REDIS_PREFIX}_node")
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._listen()), loop.create_task(self._apply_changes())]

    async def publish(self, service_id: str, items: tuple[Item, ...]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for item in items:
                pipe.publish(redis_channel((service_id, item.channel)), _wire(service_id, item))
            await pipe.execute()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self._pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # typed in newer redis
        await self._redis.aclose()

    async def _apply_changes(self) -> None:
        while True:
            action, channel = await self._changes.get()
            try:
                if action == "subscribe":
                    await self._pubsub.subscribe(channel)
                else:
                    await self._pubsub.unsubscribe(channel)
            except Exception:  # keep serving local clients; redis-py reconnects and resubscribes on the next call
                logger.exception("Redis %s of %s failed", action, channel)
            finally:
                self._changes.task_done()

    async def _listen(self) -> None:
        while True:
            message = await self._pubsub.get_message(timeout=1.0)
            if message is None or message.get("type") != "message":
                continue
            service_id, items = _unwire(message["data"])
            self._hub.deliver(service_id, items)


def _wire(service_id: str, item: Item) -> bytes:
    return json.dumps({"service_id": service_id, "item": item.raw}).encode()


def _unwire(data: bytes) -> tuple[str, tuple[Item, ...]]:
    doc: dict[str, Any] = json.loads(data)
    return str(doc["service_id"]), parse_publish_body(json.dumps({"items": [doc["item"]]}).encode())
