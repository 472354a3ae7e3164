"""The `fanmeter pushpin-stats` process: Pushpin's stats socket -> durable outbox -> metering pipeline.

It subscribes (ZeroMQ SUB) to ``conn``, ``message`` and ``report`` records, translates them
(``translate.py``), writes the events to an outbox of its own (``broker/usage/outbox.py``, file
``$FANMETER_DATA_DIR/pushpin-outbox-<node>.sqlite``) and ships them with the broker's shipper.
Each received batch of records is durable in one transaction before the next is read, together
with the connections the translator remembers (table ``pushpin_connection`` in the same file),
so a restarted adapter still bills a connection's later records to its route's service.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import zmq

from broker.settings import BrokerSettings
from broker.usage.events import Subject
from broker.usage.outbox import OutboxStore
from broker.usage.shipper import Shipper
from fanmeter.pushpin_stats.records import BILLED_TYPES, BadRecord, parse_frame
from fanmeter.pushpin_stats.translate import MonotonicStamp, OpenConnection, Translator

logger = logging.getLogger("fanmeter.pushpin_stats")

# Pushpin's PUB keeps up to 200,000 records for a slow subscriber; take as many before dropping.
RECEIVE_HWM = 200_000
MAX_DRAIN = 2000  # records per outbox transaction
POLL_MS = 250


class AdapterError(Exception):
    """The adapter cannot run (e.g. the stats socket address is invalid); the message says why."""


def outbox_path(settings: BrokerSettings, node: str) -> Path:
    return settings.data_dir.resolve() / f"pushpin-outbox-{node}.sqlite"


def utc_now() -> datetime:
    return datetime.now(UTC)


STATE_SCHEMA = """
CREATE TABLE IF NOT EXISTS pushpin_connection (
    origin TEXT NOT NULL,
    conn_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    service_id TEXT NOT NULL,
    last_seen_us INTEGER NOT NULL,
    ttl_us INTEGER NOT NULL,
    PRIMARY KEY (origin, conn_id)
);
"""


class AdapterStore(OutboxStore):
    """The outbox plus the translator's open connections, written in one transaction."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._db.executescript(STATE_SCHEMA)

    def save(self, payloads: list[str], opened: list[OpenConnection], forgotten: list[tuple[str, str]]) -> None:
        with self._transaction():
            self._db.executemany("INSERT INTO outbox_event (payload) VALUES (?)", [(p,) for p in payloads])
            self._db.executemany(
                "INSERT OR REPLACE INTO pushpin_connection VALUES (?, ?, ?, ?, ?, ?)",
                [(c.origin, c.conn_id, c.subject.account_id, c.subject.service_id, c.last_seen_us, c.ttl_us)
                 for c in opened],
            )  # fmt: skip
            self._db.executemany("DELETE FROM pushpin_connection WHERE origin = ? AND conn_id = ?", forgotten)

    def open_connections(self) -> list[OpenConnection]:
        rows = self._db.execute("SELECT * FROM pushpin_connection ORDER BY origin, conn_id").fetchall()
        return [OpenConnection(o, c, Subject(a, s), seen, ttl) for o, c, a, s, seen, ttl in rows]


class StatsAdapter:
    """Reads records, writes their events to the outbox; ``run`` returns when ``stop`` is set."""

    def __init__(self, stats_spec: str, translator: Translator, store: AdapterStore,
                 clock: Callable[[], datetime] = utc_now) -> None:  # fmt: skip
        self._spec = stats_spec
        self._translator = translator
        self._store = store
        self._clock = clock
        self._stamp = MonotonicStamp()
        self._origins: set[str] = set()
        self._warned: set[str] = set()
        self.records = self.events = self.bad = self.skipped = 0

    def run(self, stop: threading.Event) -> None:
        context = zmq.Context()
        sock = context.socket(zmq.SUB)
        sock.setsockopt(zmq.RCVHWM, RECEIVE_HWM)
        for record_type in BILLED_TYPES:
            sock.setsockopt(zmq.SUBSCRIBE, record_type.encode() + b" ")
        try:
            sock.connect(self._spec)
        except zmq.ZMQError as error:
            sock.close(linger=0)
            context.term()
            raise AdapterError(f"cannot subscribe to Pushpin's stats at {self._spec!r}: {error}") from None
        logger.info("subscribed to Pushpin stats at %s", self._spec)
        last_expiry = self._clock()
        try:
            while not stop.is_set():
                if sock.poll(POLL_MS, zmq.POLLIN):
                    self.handle(_drain(sock))
                now = self._clock()
                if (now - last_expiry).total_seconds() >= 1:
                    self._translator.expire(now)
                    self.handle([])
                    last_expiry = now
        finally:
            sock.close(linger=0)
            context.term()

    def handle(self, messages: list[list[bytes]]) -> None:
        """Translate one batch of received messages and make their events durable."""
        payloads: list[str] = []
        for parts in messages:
            at = self._stamp(self._clock())
            self.records += 1
            try:
                if len(parts) != 1:
                    raise BadRecord(f"message has {len(parts)} parts, Pushpin sends 1")
                record = parse_frame(parts[0])
            except BadRecord as error:
                self.bad += 1
                self._warn_once(f"bad stats record skipped: {error}")
                continue
            if record is None:
                continue
            if record.origin not in self._origins:
                self._origins.add(record.origin)
                logger.info("receiving stats from %s", record.origin)
            translation = self._translator.translate(record, at)
            if translation.skipped:
                self.skipped += 1
                self._warn_once(f"record skipped: {translation.skipped}")
            payloads.extend(json.dumps(e, separators=(",", ":")) for e in translation.events)
        opened, forgotten = self._translator.take_changes()
        if payloads or opened or forgotten:
            self._store.save(payloads, opened, forgotten)
            self.events += len(payloads)

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            logger.warning("%s (further ones are counted, not logged)", message)


def _drain(sock: zmq.Socket[bytes]) -> list[list[bytes]]:
    """The messages already queued, up to MAX_DRAIN (one outbox transaction)."""
    messages: list[list[bytes]] = []
    while len(messages) < MAX_DRAIN:
        try:
            messages.append(sock.recv_multipart(zmq.NOBLOCK))
        except zmq.Again:
            break
    return messages


def serve(settings: BrokerSettings, stats_spec: str, translator: Translator, stop: threading.Event) -> StatsAdapter:
    """Run the adapter and its shipper until ``stop``; a final shipping pass sends what is left."""
    from metering.client import PipelineClient  # Celery and the metering database only where shipping happens

    path = outbox_path(settings, translator.node)
    pipeline = PipelineClient.from_settings(settings)
    shipper = Shipper(
        OutboxStore(path), translator.node, pipeline.submit, pipeline.recorded, settings.broker_ship_batch,
        settings.broker_ship_interval_ms / 1000, settings.broker_resend_seconds,
    )  # fmt: skip
    store = AdapterStore(path)
    translator.restore(store.open_connections(), utc_now())
    adapter = StatsAdapter(stats_spec, translator, store)
    shipper.start()
    try:
        adapter.run(stop)
    finally:
        shipper.stop()
    return adapter
