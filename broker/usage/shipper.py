"""Ship outbox batches to the metering pipeline until the pipeline has recorded them.

"Acknowledged" means the pipeline's ``ingest_batch`` table holds a row for the batch id: the
batch's events are stored (or rejected with a reason) in the metering database, in the same
transaction as that row. A message accepted by the Celery broker is not enough (the embedded
transport loses a message whose worker dies), so until the row appears the batch is resent
every ``resend`` seconds under the same id, which the pipeline treats as a no-op once recorded.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from broker.usage.outbox import OutboxStore

Send = Callable[[str, list[str]], None]
Recorded = Callable[[list[str]], set[str]]


@dataclass(frozen=True, slots=True)
class ShipResult:
    acknowledged: int
    sent: int


def ship_once(
    store: OutboxStore, node: str, send: Send, recorded: Recorded, now_us: int, batch_size: int, resend_us: int
) -> ShipResult:
    """One pass: forget recorded batches, seal new ones, send those due."""
    sent_ids = store.sent_batches()
    acknowledged = recorded(sent_ids) if sent_ids else set()
    for batch_id in acknowledged:
        store.mark_acknowledged(batch_id)
    while store.seal_batch(new_batch_id(node), batch_size, now_us) == batch_size:
        pass
    due = store.due_batches(now_us, resend_us)
    for batch in due:
        send(batch.batch_id, batch.payloads)
        store.mark_sent(batch.batch_id, now_us)
    return ShipResult(len(acknowledged), len(due))


def new_batch_id(node: str) -> str:
    """Batch ids fit the pipeline's 64 characters: node (at most 40) and 22 random hex digits."""
    return f"{node[:40]}-{uuid.uuid4().hex[:22]}"


class Shipper:
    """A thread running ``ship_once`` every ``interval_s``; errors are retried on the next pass."""

    def __init__(self, store: OutboxStore, node: str, send: Send, recorded: Recorded, batch_size: int,
                 interval_s: float, resend_s: float) -> None:  # fmt: skip
        self._args = (store, node, send, recorded)
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._resend_us = int(resend_s * 1_000_000)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox-shipper", daemon=True)
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, final_pass: bool = True) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        if final_pass:
            self._pass()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._pass()

    def _pass(self) -> None:
        try:
            ship_once(
                *self._args, now_us=time.time_ns() // 1000, batch_size=self._batch_size, resend_us=self._resend_us
            )
            self.last_error = None
        except Exception as error:  # the pipeline or its database is down: keep the outbox, try again
            self.last_error = f"{type(error).__name__}: {error}"
