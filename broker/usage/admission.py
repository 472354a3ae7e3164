"""Whether the broker may take on new metered work: the outbox's cap, and whether it can be written.

A held connection's ``open`` and a publish's items are written to the outbox before the client
or the publisher is answered (broker/usage/meter.py). When the outbox cannot take them the
broker refuses the work with 503 and ``Retry-After`` rather than serve it unmetered
(docs/decisions.md, "Outbox cap and refusals"):

- ``outbox_full``: the outbox holds ``FANMETER_BROKER_OUTBOX_MAX_EVENTS`` events or more that the
  pipeline has not acknowledged (it has not been taking them: a network partition, an outage
  longer than the shipper waits). The depth is the writer's count: every event it commits, and a
  recount of the file every half second (the shipper deletes what the pipeline recorded).
- ``outbox_write_failed``: the write itself failed (the disk is full, the file is read-only).
  Nothing is refused in advance for it: the next open or publish tries again, so the broker
  serves again as soon as a write succeeds.

Connections already held go on being metered: their alive reports, closes and delivery counts
are kept and retried until durable, so the depth can pass the cap by about one event per held
connection per alive interval (and their closes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# What a refused client or publisher is told to wait before trying again.
RETRY_AFTER_S = 5
REASONS = ("outbox_full", "outbox_write_failed")


class MeteringRefused(Exception):
    """New work the broker cannot meter now; answered 503 with ``Retry-After`` (the message says why)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class OutboxAdmission:
    """The cap on the outbox's depth, its current depth, and the refusals so far (for the metrics)."""

    max_events: int
    depth: int = 0
    refused: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))

    def check(self) -> None:
        """Raise ``MeteringRefused`` when the outbox is at its cap."""
        if self.depth >= self.max_events:
            self.refused["outbox_full"] += 1
            raise MeteringRefused(
                "outbox_full",
                f"Service unavailable: this broker cannot meter new work now (its metering outbox holds "
                f"{self.depth} events, the cap is {self.max_events}: the metering pipeline is not taking them); "
                f"retry in {RETRY_AFTER_S} s",
            )

    def write_failed(self) -> MeteringRefused:
        """The refusal for work whose events could not be written (the writer logs the error itself)."""
        self.refused["outbox_write_failed"] += 1
        return MeteringRefused(
            "outbox_write_failed",
            f"Service unavailable: this broker cannot meter new work now (its metering outbox cannot be "
            f"written); retry in {RETRY_AFTER_S} s",
        )
