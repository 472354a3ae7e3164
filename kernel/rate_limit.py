"""Per-key token buckets: a sustained rate and a burst, in integer nanoseconds (pure, stdlib only).

Used for the per-token limits of the broker's publish API and the admin service's ``POST /v1/events``
(docs/decisions.md, "Limits"). Each key's bucket holds at most ``burst`` tokens and refills at
``per_second``; a request takes one token or is refused with the time until one is there.

The bucket is kept as the generic cell rate algorithm keeps it (one integer per key, no float state
to drift): the *theoretical arrival time* ``tat``, the instant at which the bucket would be full
again. A request at ``now`` is admitted when ``tat - now <= (burst - 1) * interval`` and then moves
``tat`` on by one ``interval`` (``1 / per_second``). That is exactly a token bucket of capacity
``burst`` refilled every ``interval``, so in any span of ``d`` ns at most ``burst + d / interval``
requests are admitted (``tests/property/test_rate_limit_properties.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

NS_PER_S = 1_000_000_000
# Buckets are dropped once full again (the key forgotten costs nothing: a new one starts full); the
# sweep runs when this many keys were added since the last one, so memory follows live keys.
SWEEP_EVERY = 10_000


@dataclass(frozen=True, slots=True)
class Rate:
    """A sustained rate per second and a burst (the bucket's capacity, requests admitted at once).

    ``Rate(10, 20)``: 20 requests at once, then one every 100 ms. ``per_second`` 0 means no limit.
    """

    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_second < 0 or self.burst < 1:
            raise ValueError(f"a rate needs per_second >= 0 and burst >= 1, got {self.per_second}, {self.burst}")

    @property
    def limited(self) -> bool:
        return self.per_second > 0

    @property
    def interval_ns(self) -> int:
        """Nanoseconds between two tokens: ``Rate(4, 1).interval_ns == 250_000_000`` (0 without a limit)."""
        return max(1, round(NS_PER_S / self.per_second)) if self.limited else 0


def retry_after_seconds(wait_ns: int) -> int:
    """A ``Retry-After`` value: whole seconds, rounded up, at least 1 (``1`` for 1 ns, ``2`` for 1.2 s)."""
    return max(1, math.ceil(wait_ns / NS_PER_S))


class RateLimiter:
    """Token buckets per key under one ``Rate``; ``admit`` says whether a request may go on now."""

    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self._interval = rate.interval_ns
        self._tolerance = (rate.burst - 1) * self._interval
        self._tat: dict[str, int] = {}
        self._added = 0

    def admit(self, key: str, now_ns: int) -> int:
        """0 when the request under ``key`` at ``now_ns`` is admitted (it takes a token); else the
        nanoseconds until it would be (nothing is taken).

        With ``Rate(1, 2)``: at t=0 s two requests are admitted and a third waits 1 s.
        """
        if not self.rate.limited:
            return 0
        tat = self._tat.get(key)
        if tat is None:
            self._added += 1
            if self._added >= SWEEP_EVERY:
                self.sweep(now_ns)
            tat = now_ns
        elif tat < now_ns:
            tat = now_ns
        wait = tat - now_ns - self._tolerance
        if wait > 0:
            return wait
        self._tat[key] = tat + self._interval
        return 0

    def sweep(self, now_ns: int) -> None:
        """Forget the keys whose bucket is full again at ``now_ns`` (a forgotten key starts full)."""
        self._tat = {key: tat for key, tat in self._tat.items() if tat > now_ns}
        self._added = 0

    def __len__(self) -> int:
        return len(self._tat)
