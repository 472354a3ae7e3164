"""Webhook delivery rules, pure: the backoff schedule, when to give up, and which delivery goes next.

Each endpoint gets its events one at a time, in the order they were recorded: only the
earliest undelivered one (its *head*) may be sent, and later events wait behind it even if they
are due. A failed attempt schedules the next one with exponential backoff (30 s, 1 min, 2 min,
… capped at 4 h) until a day has passed since the first failure of the series; the attempt at
that day's end is the last, and if it fails too the delivery is given up and the endpoint is
disabled (the shell writes the audit entry). A redeliver starts a new series.

Example (the default policy): first failure at 00:00:00 -> next at 00:00:30; the 2nd failure
at 00:00:30 -> 00:01:30; … the 10th failure -> 4 h later; an attempt that would fall after
24:00:00 is moved to 24:00:00 exactly, and a failure then gives up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long to wait after the n-th failure, and how long to keep trying."""

    first_delay_s: int = 30
    max_delay_s: int = 4 * 3600
    give_up_after_s: int = 24 * 3600

    def delay(self, failures: int) -> timedelta:
        """The wait after the ``failures``-th consecutive failure (1 -> 30 s, 2 -> 60 s, capped at 4 h)."""
        if failures < 1:
            raise ValueError("a delay follows at least one failure")
        # 2 ** 40 already dwarfs any cap; bounding the exponent keeps huge counts cheap.
        seconds = self.first_delay_s * 2 ** min(failures - 1, 40)
        return timedelta(seconds=min(seconds, self.max_delay_s))

    def deadline(self, failing_since: datetime) -> datetime:
        """The last instant an attempt of a series that started failing at ``failing_since`` is made."""
        return failing_since + timedelta(seconds=self.give_up_after_s)


DEFAULT_POLICY = RetryPolicy()


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """Where one event's delivery to one endpoint stands."""

    status: str = PENDING
    attempts: int = 0
    failures: int = 0  # consecutive failures of the current series
    next_attempt_at: datetime | None = None
    failing_since: datetime | None = None
    delivered_at: datetime | None = None


def new_delivery(now: datetime) -> DeliveryState:
    """A delivery just recorded: pending, due at once."""
    return DeliveryState(next_attempt_at=now)


def after_attempt(state: DeliveryState, succeeded: bool, now: datetime, policy: RetryPolicy) -> DeliveryState:
    """The state after an attempt at ``now`` that ``succeeded`` (a 2xx answer) or not.

    A failure schedules the next attempt with backoff, never after the series' deadline; a failure
    at or past the deadline gives up (``FAILED``).
    """
    attempts = state.attempts + 1
    if succeeded:
        return DeliveryState(DELIVERED, attempts, 0, None, None, now)
    failing_since = state.failing_since or now
    failures = state.failures + 1
    deadline = policy.deadline(failing_since)
    if now >= deadline:
        return DeliveryState(FAILED, attempts, failures, None, failing_since, None)
    next_at = min(now + policy.delay(failures), deadline)
    return DeliveryState(PENDING, attempts, failures, next_at, failing_since, None)


def redelivered(state: DeliveryState, now: datetime) -> DeliveryState:
    """Send again at once (any state): a new series, its attempts still counted."""
    return replace(state, status=PENDING, failures=0, next_attempt_at=now, failing_since=None, delivered_at=None)


class Queued(Protocol):
    """What ordering needs of a pending delivery: its event's place and when it is due."""

    @property
    def event_seq(self) -> int: ...

    @property
    def next_attempt_at(self) -> datetime | None: ...


Q = TypeVar("Q", bound=Queued)


def due_head(pending: Iterable[Q], now: datetime) -> Q | None:
    """The delivery an endpoint may send at ``now``: its earliest pending one, if that one is due.

    Later deliveries never overtake it, due or not: ``due_head([seq 2 due, seq 1 due at 10:05],
    10:00)`` is None.
    """
    head = min(pending, key=lambda delivery: delivery.event_seq, default=None)
    if head is None or head.next_attempt_at is None or head.next_attempt_at > now:
        return None
    return head


def succeeded(status_code: int | None) -> bool:
    """Standard Webhooks: any 2xx answer is a delivery; anything else (or no answer) is retried."""
    return status_code is not None and 200 <= status_code < 300
