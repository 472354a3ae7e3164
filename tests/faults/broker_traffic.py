"""Traffic for the broker's fault tests: publishers that keep publishing through a fault, held clients,
and the events a node's outbox holds (read from its SQLite file, apart from anything the pipeline stored).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import websockets
from sqlalchemy import Engine, text

from broker.settings import BrokerSettings
from tests.e2e.broker_stack import TOKEN, BrokerNode
from tests.faults.soak import Client


def outbox_file(env: dict[str, str], node: str) -> Path:
    return BrokerSettings(data_dir=Path(env["FANMETER_DATA_DIR"]), broker_node=node).outbox_path


def outbox_events(path: Path) -> list[dict[str, Any]]:
    """Every event the outbox holds (sent or not), read-only: the broker may be running."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as db:
        return [json.loads(payload) for (payload,) in db.execute("SELECT payload FROM outbox_event ORDER BY seq")]


def outbox_count(path: Path) -> int:
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as db:
        return int(db.execute("SELECT count(*) FROM outbox_event").fetchone()[0])


@dataclass
class Publishers:
    """``threads`` publishers, each sending one request after another to ``url`` until stopped.

    Every request is tallied by its outcome: ``acked`` (200: its items are billed), ``refused``
    (another status: never billed, since the broker meters a publish before answering 200 and
    refuses before metering), ``unsent`` (the connection was refused: nothing reached the broker),
    or ``unanswered`` (sent, but the node died before answering: billed or not, the outbox says).
    """

    url: str
    channel: str
    items_per_request: int = 1
    threads: int = 2
    pause_s: float = 0.0
    acked: int = 0  # items
    refused: dict[int, int] = field(default_factory=dict)  # status -> requests
    refusal_texts: set[str] = field(default_factory=set)
    unsent: int = 0  # requests
    unanswered: int = 0  # items
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Publishers:
        for n in range(self.threads):
            thread = threading.Thread(target=self._run, name=f"publisher-{n}", daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(timeout=60)

    def _body(self) -> dict[str, Any]:
        items = []
        for _ in range(self.items_per_request):
            text = f"fault {uuid.uuid4().hex}"
            formats = {"http-stream": {"content": f"{text}\n"}, "ws-message": {"content": text}}
            items.append({"channel": self.channel, "formats": formats})
        return {"items": items}

    def _run(self) -> None:
        with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            while not self._stop.is_set():
                try:
                    answer = http.post(self.url, json=self._body())
                except httpx.ConnectError:
                    with self._lock:
                        self.unsent += 1
                    time.sleep(0.05)  # the node is down: try again shortly, as a publisher would
                    continue
                except httpx.TransportError:
                    with self._lock:
                        self.unanswered += self.items_per_request
                    continue
                with self._lock:
                    if answer.status_code == 200:
                        self.acked += self.items_per_request
                    else:
                        self.refused[answer.status_code] = self.refused.get(answer.status_code, 0) + 1
                        self.refusal_texts.add(answer.text.strip())
                if self.pause_s:
                    time.sleep(self.pause_s)

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            return self.acked, self.unanswered


def published_items(events: list[dict[str, Any]], account: str) -> int:
    return sum(
        e["data"]["count"]
        for e in {(e["source"], e["id"]): e for e in events}.values()
        if e["type"] == "fanout.message.published" and e["data"]["account_id"] == account
    )


def connection_ids(events: list[dict[str, Any]], account: str) -> set[str]:
    return {
        e["data"]["connection_id"]
        for e in events
        if e["type"].startswith("fanout.connection.") and e["data"]["account_id"] == account
    }


def single_service(path: Path, origin: str, account: str, service_id: str = "svc-a") -> Path:
    """A services file with one Fanout service of ``account`` in front of ``origin``."""
    from tests.e2e.broker_stack import GRIP_KEY

    service = {"service_id": service_id, "account_id": account, "origin": origin, "publish_tokens": [TOKEN],
               "grip_key": GRIP_KEY, "fanout_enabled": True}  # fmt: skip
    path.write_text(json.dumps({"services": [service]}))
    return path


def stored_events(engine: Engine, account: str) -> list[dict[str, Any]]:
    """The account's events as the pipeline stored them (``raw_event``), back in CloudEvent form.

    For faults where the outbox forgets what the pipeline acknowledged, so no snapshot of it holds
    everything: the client-side tallies are then checked against these, and the usage against an
    independent computation over them.
    """
    query = text(
        "SELECT source, event_id, type, time_us, service_id, connection_id, count, bytes_out FROM raw_event "
        "WHERE account_id = :a"
    )
    with engine.connect() as conn:
        rows = conn.execute(query, {"a": account}).all()
    events = []
    for source, event_id, kind, time_us, service_id, connection_id, count, bytes_out in rows:
        at = datetime.fromtimestamp(time_us / 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        data: dict[str, Any] = {"account_id": account, "service_id": service_id}
        if kind.startswith("fanout.message."):
            data["count"] = count
        else:
            data["connection_id"] = connection_id
            if kind != "fanout.connection.open":
                data["bytes_out"] = bytes_out
        events.append({"source": source, "id": event_id, "type": kind, "time": at, "data": data})
    return events


def metric(url: str, name: str, **labels: str) -> float:
    """One series' value from a broker's ``/metrics`` (0 when not shown)."""
    from prometheus_client.parser import text_string_to_metric_families

    answer = httpx.get(url, timeout=10)
    answer.raise_for_status()
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def closed_sessions(engine: Engine, account: str) -> int:
    """The account's connection sessions the rollup has closed."""
    with engine.connect() as conn:
        query = text("SELECT count(*) FROM connection_session WHERE account_id = :a AND closed")
        return int(conn.execute(query, {"a": account}).scalar_one())


async def refused_attempts(node: BrokerNode, http: httpx.AsyncClient) -> list[tuple[int, str | None, str]]:
    """A new HTTP stream and a new WebSocket of svc-a: (status, Retry-After, body) of each."""
    answer = await http.get(f"{node.url}/s/svc-a/stream?ch=fan")
    out = [(answer.status_code, answer.headers.get("retry-after"), answer.text)]
    try:
        async with websockets.connect(node.url.replace("http://", "ws://") + "/s/svc-a/ws?ch=fan"):
            out.append((101, None, "accepted"))
    except websockets.InvalidStatus as refused:
        response = refused.response
        out.append((response.status_code, response.headers.get("Retry-After"), response.body.decode()))
    return out


async def settled(clients: list[Client], quiet_s: float = 0.5) -> None:
    """Wait until the clients have received nothing more for ``quiet_s`` (no publisher runs any more)."""
    seen = -1
    while (now := sum(c.received for c in clients)) != seen:
        seen = now
        await asyncio.sleep(quiet_s)


async def until(condition: object, timeout_s: float, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
