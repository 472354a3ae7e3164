"""What one party may take of a broker node: publishes per token, held connections per service.

Both are the node's own (in memory): with N nodes behind a balancer a token may publish N times its
rate in all, and a service hold N times its limit (docs/decisions.md, "Limits"). The connections per
client address are limited in the HTTP server (``kernel.http_limits``), before a request exists.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from kernel.http_limits import AddressCounts
from kernel.rate_limit import Rate, RateLimiter, retry_after_seconds

# What a client refused for a full service is told to wait: held connections free up as clients
# leave, and sooner than this would have every refused client come back at once.
HELD_RETRY_AFTER_S = 10


class PublishLimited(Exception):
    """A publish over its token's rate: answered 429 before its body is read (nothing published or metered)."""

    def __init__(self, token_id: str, retry_after_s: int) -> None:
        super().__init__(token_id, retry_after_s)
        self.token_id = token_id
        self.retry_after_s = retry_after_s


class HeldConnections:
    """How many connections each service holds on this node, against its limit (0: none)."""

    def __init__(self, per_service: int = 0, overrides: Mapping[str, int] | None = None) -> None:
        self.per_service = per_service
        self.overrides = dict(overrides or {})
        self.held: dict[str, int] = {}
        self.refused: Counter[str] = Counter()

    def limit(self, service_id: str) -> int:
        return self.overrides.get(service_id, self.per_service)

    def enter(self, service_id: str) -> bool:
        """Count one more held connection of ``service_id``; False (and nothing counted) at its limit."""
        limit = self.overrides.get(service_id, self.per_service) if self.overrides else self.per_service
        held = self.held.get(service_id, 0)
        if limit and held >= limit:
            self.refused[service_id] += 1
            return False
        self.held[service_id] = held + 1
        return True

    def leave(self, service_id: str) -> None:
        left = self.held[service_id] - 1
        if left > 0:
            self.held[service_id] = left
        else:
            del self.held[service_id]

    def refusal(self, service_id: str) -> str:
        return (
            f"Service unavailable: service {service_id} holds its limit of {self.limit(service_id)} connections "
            f"on this node; retry in {HELD_RETRY_AFTER_S} s\n"
        )


@dataclass
class BrokerLimits:
    """The node's limits: per publish token, per service for held connections, and the HTTP server's
    count of connections per client address (``kernel.http_limits``), kept here for the metrics."""

    publish: RateLimiter = field(default_factory=lambda: RateLimiter(Rate(0, 1)))
    held: HeldConnections = field(default_factory=HeldConnections)
    addresses: AddressCounts = field(default_factory=lambda: AddressCounts(0))
    publishes_refused: Counter[str] = field(default_factory=Counter)  # by service

    def publish_wait(self, service_id: str, token_id: str) -> int:
        """0 when a publish with this token may go on now; else whole seconds to wait (``Retry-After``)."""
        wait = self.publish.admit(f"{service_id}/{token_id}", time.monotonic_ns())
        if not wait:
            return 0
        self.publishes_refused[service_id] += 1
        return retry_after_seconds(wait)

    def publish_refusal(self, token_id: str, retry_after_s: int) -> bytes:
        """The 429's JSON body: what was exceeded, and when to come back."""
        rate = self.publish.rate
        detail = (
            f"too many publishes with token {token_id}: its limit is {rate.per_second:g} per second "
            f"(bursts of {rate.burst}); retry in {retry_after_s} s"
        )
        return json.dumps({"detail": detail, "retry_after_seconds": retry_after_s}).encode()
