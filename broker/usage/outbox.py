"""The node's durable outbox: a SQLite file in WAL mode, with a schema of its own.

Why its own file and not the metering database: the broker must record an event before it
acknowledges the work (a publish, an open connection) even when the pipeline or its database
is down. The schema is created here, not by Alembic (it is node-local state, not the shared
schema), and is documented in docs/decisions.md ("Broker outbox"):

- ``outbox_event(seq, payload, batch_id)``: one CloudEvent JSON text per row; ``batch_id`` is
  NULL until the shipper seals it into a batch.
- ``outbox_batch(batch_id, created_at_us, sent_at_us, attempts)``: a sealed batch keeps its id
  for every resend, so the pipeline's batch-id check turns a resend into a no-op.
A batch the pipeline has recorded is deleted with its events.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from broker.usage.admission import OutboxAdmission

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox_event (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    payload TEXT NOT NULL,
    batch_id TEXT
);
CREATE INDEX IF NOT EXISTS ix_outbox_event_batch_id ON outbox_event (batch_id);
CREATE TABLE IF NOT EXISTS outbox_batch (
    batch_id TEXT PRIMARY KEY,
    created_at_us INTEGER NOT NULL,
    sent_at_us INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0
);
"""


class DueBatch(NamedTuple):
    """A sealed batch to send (again): its id, kept for every resend, and its events' texts in order."""

    batch_id: str
    payloads: list[str]


class OutboxStore:
    """Synchronous access to the outbox file; one instance per thread that uses it."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        # WAL survives a killed process with synchronous=NORMAL: a committed transaction is in the
        # log before commit returns; only an OS crash or power loss could lose the last ones.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def append(self, payloads: list[str]) -> None:
        """Store event texts durably (one transaction)."""
        with self._transaction():
            self._db.executemany("INSERT INTO outbox_event (payload) VALUES (?)", [(p,) for p in payloads])

    def seal_batch(self, batch_id: str, limit: int, now_us: int) -> int:
        """Put up to ``limit`` of the oldest unbatched events into a new batch; return how many."""
        with self._transaction():
            cursor = self._db.execute(
                "UPDATE outbox_event SET batch_id = ? WHERE seq IN "
                "(SELECT seq FROM outbox_event WHERE batch_id IS NULL ORDER BY seq LIMIT ?)",
                (batch_id, limit),
            )
            if cursor.rowcount:
                self._db.execute("INSERT INTO outbox_batch (batch_id, created_at_us) VALUES (?, ?)", (batch_id, now_us))
            return cursor.rowcount

    def due_batches(self, now_us: int, resend_us: int) -> list[DueBatch]:
        """Batches never sent, or sent longer than ``resend_us`` ago and not yet acknowledged."""
        rows = self._db.execute(
            "SELECT batch_id FROM outbox_batch WHERE sent_at_us IS NULL OR sent_at_us <= ? ORDER BY created_at_us",
            (now_us - resend_us,),
        ).fetchall()
        return [DueBatch(batch_id, self.payloads(batch_id)) for (batch_id,) in rows]

    def payloads(self, batch_id: str) -> list[str]:
        rows = self._db.execute("SELECT payload FROM outbox_event WHERE batch_id = ? ORDER BY seq", (batch_id,))
        return [payload for (payload,) in rows]

    def sent_batches(self) -> list[str]:
        return [b for (b,) in self._db.execute("SELECT batch_id FROM outbox_batch WHERE sent_at_us IS NOT NULL")]

    def mark_sent(self, batch_id: str, now_us: int) -> None:
        self._db.execute(
            "UPDATE outbox_batch SET sent_at_us = ?, attempts = attempts + 1 WHERE batch_id = ?", (now_us, batch_id)
        )

    def mark_acknowledged(self, batch_id: str) -> None:
        """The pipeline recorded the batch: forget it."""
        with self._transaction():
            self._db.execute("DELETE FROM outbox_event WHERE batch_id = ?", (batch_id,))
            self._db.execute("DELETE FROM outbox_batch WHERE batch_id = ?", (batch_id,))

    def backlog(self) -> int:
        """Events not yet acknowledged by the pipeline."""
        return int(self._db.execute("SELECT count(*) FROM outbox_event").fetchone()[0])

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            self._db.execute("COMMIT")
        elif self._db.in_transaction:  # SQLite may have rolled back already (a full disk does)
            self._db.execute("ROLLBACK")


class OutboxWriter:
    """Group commit for the event loop: every event waiting when a commit starts goes in it.

    ``write`` returns once the events are durable (use it before acknowledging work); when they
    cannot be written it raises, and the work must be refused. ``enqueue`` only queues them (for
    a finally-block that may be cancelled; ``flush`` waits): those events are about work already
    done (closes, deliveries, alive reports), so a failed commit keeps them and tries again every
    ``retry_s`` until they are durable. ``admission`` is the cap on the outbox's depth
    (broker/usage/admission.py), which the writer keeps counted.
    """

    def __init__(self, store: OutboxStore, max_events: int = 1_000_000, recount_s: float = 0.5,
                 retry_s: float = 0.5) -> None:  # fmt: skip
        self._store = store
        self.admission = OutboxAdmission(max_events)
        self._recount_s, self._retry_s = recount_s, retry_s
        self._acked: list[str] = []  # events of work that waits for them (write)
        self._waiters: list[asyncio.Future[None]] = []
        self._kept: list[str] = []  # events of work already done (enqueue): written whatever it takes
        self._kept_waiters: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.last_error: str | None = None  # the failing write's error, until a write succeeds

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def enqueue(self, events: list[dict[str, Any]]) -> asyncio.Future[None]:
        future = _quiet_future()
        self._kept.extend(json.dumps(e, separators=(",", ":")) for e in events)
        self._kept_waiters.append(future)
        self._wake.set()
        return future

    async def write(self, events: list[dict[str, Any]]) -> None:
        future = _quiet_future()
        self._acked.extend(json.dumps(e, separators=(",", ":")) for e in events)
        self._waiters.append(future)
        self._wake.set()
        await asyncio.shield(future)

    async def flush(self) -> None:
        if self._kept or self._kept_waiters or self._acked or self._waiters:
            await asyncio.shield(self.enqueue([]))

    async def stop(self, timeout_s: float = 5.0) -> None:
        try:
            await asyncio.wait_for(self.flush(), timeout_s)
        except TimeoutError:  # the disk is still full: say what is lost, in one line
            logger.error("outbox: %d events could not be written before shutdown: %s", len(self._kept), self.last_error)
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        self.admission.depth = await asyncio.to_thread(self._store.backlog)
        counted = time.monotonic()
        while True:
            if time.monotonic() - counted >= self._recount_s:  # the shipper deletes what the pipeline recorded
                self.admission.depth = await asyncio.to_thread(self._store.backlog)
                counted = time.monotonic()
            try:
                await asyncio.wait_for(self._wake.wait(), self._recount_s)
            except TimeoutError:
                continue
            self._wake.clear()
            kept, kept_waiters, acked, waiters = self._kept, self._kept_waiters, self._acked, self._waiters
            self._kept, self._kept_waiters, self._acked, self._waiters = [], [], [], []
            payloads = kept + acked
            try:
                if payloads:
                    await asyncio.to_thread(self._store.append, payloads)
            except Exception as error:  # a full disk, a read-only file: refuse new work, keep what was done
                if self.last_error is None:
                    logger.error("outbox: cannot write %s: %s (refusing new work until a write succeeds)",
                                 self._store.path, error)  # fmt: skip
                self.last_error = f"{type(error).__name__}: {error}"
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(error)
                self._kept[:0], self._kept_waiters[:0] = kept, kept_waiters
                await asyncio.sleep(self._retry_s)
                self._wake.set()
                continue
            if self.last_error is not None:
                logger.warning("outbox: writing again after: %s", self.last_error)
                self.last_error = None
            self.admission.depth += len(payloads)
            for waiter in (*kept_waiters, *waiters):
                if not waiter.done():
                    waiter.set_result(None)


def _quiet_future() -> asyncio.Future[None]:
    """A future whose exception counts as seen even when its waiter was cancelled (the shield outlives it)."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    return future


class Backlog(NamedTuple):
    """What an outbox holds that the pipeline has not acknowledged: how many events, and the oldest one's time."""

    events: int
    oldest_at: datetime | None


def read_backlog(path: Path) -> Backlog:
    """The outbox file's backlog, read on a connection of its own, read-only (the broker's metrics scrape).

    Events are stored in the order they were written, so the lowest ``seq`` is the oldest.
    """
    if not path.exists():
        return Backlog(0, None)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        (events,) = db.execute("SELECT count(*) FROM outbox_event").fetchone()
        row = db.execute("SELECT json_extract(payload, '$.time') FROM outbox_event ORDER BY seq LIMIT 1").fetchone()
    finally:
        db.close()
    return Backlog(int(events), datetime.fromisoformat(row[0]) if row and row[0] else None)
