"""Simulated broker traffic for `fanmeter up`: a few accounts across a month boundary.

Event ids are derived from the seed, so sending the same demo twice is a no-op for
billing (the second run shows every event as a duplicate).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from kernel.instants import MICROS_PER_SECOND, from_micros

ACCOUNTS = {"acme": ["acme-chat", "acme-scores"], "globex": ["globex-feed"], "initech": ["initech-ops", "initech-tps"]}
TRANSPORTS = ["sse", "http-stream", "long-poll", "websocket"]


def demo_events(boundary_us: int, count: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """Yield about ``count`` events of connections and messages around the instant ``boundary_us``."""
    rng = random.Random(seed)
    produced = 0
    serial = 0
    while produced < count:
        account = rng.choice(sorted(ACCOUNTS))
        service = rng.choice(ACCOUNTS[account])
        start = boundary_us + rng.randint(-3 * 3600, 3 * 3600) * MICROS_PER_SECOND
        serial += 1
        batch = list(_connection(rng, account, service, f"c{serial}", start))
        batch += list(_messages(rng, account, service, start))
        produced += len(batch)
        yield from batch


def _connection(rng: random.Random, account: str, service: str, conn: str, start: int) -> Iterator[dict[str, Any]]:
    source = f"broker/node-{rng.randint(1, 2)}"
    data = {"account_id": account, "service_id": service, "connection_id": conn}
    yield _event(source, f"{conn}-open", "fanout.connection.open", start, {**data, "transport": rng.choice(TRANSPORTS)})
    duration_s = rng.choice([5, 59, 60, 61, 150, 600, 1800, 3600])
    sent = 0
    for second in range(60, duration_s, 60):
        sent += rng.randint(100, 5000)
        alive = {**data, "bytes_out": sent, "bytes_in": sent // 10}
        yield _event(
            source, f"{conn}-alive-{second}", "fanout.connection.alive", start + second * MICROS_PER_SECOND, alive
        )
    if rng.random() < 0.95:  # one close in twenty is lost, as on a real network
        sent += rng.randint(0, 500)
        close = {**data, "bytes_out": sent, "bytes_in": sent // 10, "reason": "client closed"}
        yield _event(source, f"{conn}-close", "fanout.connection.close", start + duration_s * MICROS_PER_SECOND, close)


def _messages(rng: random.Random, account: str, service: str, start: int) -> Iterator[dict[str, Any]]:
    channel = f"{service}-room-{rng.randint(1, 3)}"
    for n in range(rng.randint(0, 3)):
        when = start + rng.randint(0, 600) * MICROS_PER_SECOND
        item = f"{service}-{start}-{n}"
        data = {"account_id": account, "service_id": service, "channel": channel}
        yield _event(
            "broker/node-1", f"pub-{item}", "fanout.message.published", when, {**data, "count": 1, "bytes": 200}
        )
        delivered = {**data, "count": rng.randint(1, 40), "bytes": 200}
        yield _event("broker/node-1", f"dlv-{item}", "fanout.message.delivered", when + 1000, delivered)


def _event(source: str, event_id: str, kind: str, time_us: int, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": kind,
        "subject": data["service_id"],
        "time": _rfc3339(from_micros(time_us)),
        "datacontenttype": "application/json",
        "data": data,
    }


def _rfc3339(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def write_demo_file(path: str, boundary_us: int, count: int) -> None:
    """Write the demo traffic as JSON lines."""
    with open(path, "w", encoding="utf-8") as out:
        for event in demo_events(boundary_us, count):
            out.write(json.dumps(event) + "\n")
