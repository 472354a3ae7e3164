"""A soak: steady traffic through the whole stack, with its processes' memory, the outbox and the lag sampled.

Shared by the faults tier's bounded soak (tests/faults/test_soak.py, about a minute) and
bench/soak.py (an hour or more). The stack is real: a `fanmeter broker` node in front of the
gripcontrol origin (tests/e2e/grip_origin.py), its SQLite outbox, the shipper, a `fanmeter
worker` (ingest and rollups) on PostgreSQL and RabbitMQ, and statement drafts rebuilt from the
rolled-up usage every ``draft_every_s`` (``billing.statements.build_drafts``, as the beat's
sweep and finance's "regenerate" do).

Traffic, from one conductor coroutine so that what each client must receive is known exactly:
every tick it publishes one item to each account's channel (held by every client of that
account), and every ``churn_every_s`` it closes the oldest connection once that client has
received every item published since it opened, and opens a new one. Each connection lives less
than a minute, so each is billed exactly one connection minute. The expected usage is this
client-side tally (items acknowledged, items and bytes received, connections opened), kept apart
from anything fanmeter computes.

Sampled every ``sample_every_s``: RSS of every process of the broker, the worker (its parent and
pool children) and the origin (``/proc/<pid>/status``), the outbox's depth (events not yet
acknowledged by the pipeline, read from its SQLite file), and the pipeline's lag: how long ago
the oldest publish the broker acknowledged but usage does not count yet was acknowledged
(0 when usage has caught up).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import statistics
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import websockets
from sqlalchemy import Engine, create_engine, insert
from sqlalchemy.pool import NullPool

from billing import statements
from billing.orm import Account
from broker.settings import BrokerSettings
from kernel.instants import Month
from metering import service
from tests.e2e.broker_stack import GRIP_KEY, TOKEN, BrokerNode, broker_node, grip_origin
from tests.faults.harness import start_worker

FIELDS = ("connection_minutes", "messages_published", "messages_delivered", "bytes_out")


# ---------------------------------------------------------------- the stack's services


def soak_services(path: Path, origin: str, accounts: list[str]) -> Path:
    """One Fanout service per account (``svc-<account>``), in front of ``origin``."""
    services = [
        {"service_id": f"svc-{a}", "account_id": a, "origin": origin, "publish_tokens": [TOKEN],
         "grip_key": GRIP_KEY, "fanout_enabled": True}
        for a in accounts
    ]  # fmt: skip
    path.write_text(json.dumps({"services": services}))
    return path


def add_accounts(engine: Engine, accounts: list[str]) -> None:
    """The accounts in the admin service's tables, so statement drafts are built for them."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(Account),
            [{"id": a, "name": f"soak {a}", "plan": "paid", "currency": "USD", "created_at": now} for a in accounts],
        )


# ---------------------------------------------------------------- clients


@dataclass
class Client:
    """One held connection (an HTTP stream or a WebSocket) that counts what it receives."""

    account: str
    kind: str
    service_id: str = ""  # default: the soak's ``svc-<account>``
    opened_at: float = 0.0
    published_before_open: int = 0  # the account's items published before this client held its channel
    received: int = 0
    bytes: int = 0
    _task: asyncio.Task[None] | None = None
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack)

    async def open(self, http: httpx.AsyncClient, broker: str, channel: str) -> None:
        """Returns once the broker holds the subscription (the first bytes arrived)."""
        service = self.service_id or f"svc-{self.account}"
        if self.kind == "stream":
            response = await self._stack.enter_async_context(
                http.stream("GET", f"{broker}/s/{service}/stream?ch={channel}")
            )
            response.raise_for_status()
            chunks = response.aiter_raw()
            first = await anext(chunks)
            assert first == b"stream open\n", first
            self.bytes += len(first)
            self._task = asyncio.ensure_future(self._read_stream(chunks))
        else:
            url = broker.replace("http://", "ws://") + f"/s/{service}/ws?ch={channel}"
            socket = await self._stack.enter_async_context(websockets.connect(url, max_size=None))
            welcome = await socket.recv()
            assert welcome == "welcome", welcome
            self.bytes += len(b"welcome")
            self._task = asyncio.ensure_future(self._read_socket(socket))
        self.opened_at = time.monotonic()

    @property
    def connected(self) -> bool:
        """Still reading: the broker has not ended the connection."""
        return self._task is not None and not self._task.done()

    async def _read_stream(self, chunks: Any) -> None:
        async for chunk in chunks:
            self.bytes += len(chunk)
            self.received += chunk.count(b"\n")

    async def _read_socket(self, socket: Any) -> None:
        async for message in socket:
            self.bytes += len(message.encode() if isinstance(message, str) else message)
            self.received += 1

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._stack.aclose()


# ---------------------------------------------------------------- sampling


def process_tree(root: int) -> list[int]:
    """``root`` and every descendant, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(parent, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def rss_mb(pid: int) -> float:
    """Resident memory of one process (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def process_name(pid: int) -> str:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [a.decode(errors="replace") for a in args if a]
    if "fanmeter" in words:
        at = words.index("fanmeter")
        return " ".join(words[at : at + 2])
    return " ".join(words[:3])


def outbox_depth(path: Path) -> int:
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as db:
        return int(db.execute("SELECT count(*) FROM outbox_event").fetchone()[0])


@dataclass
class Sample:
    at_s: float  # since the traffic started
    rss_mb: dict[str, float]  # process role -> MB (a role with several processes is summed)
    outbox_depth: int
    lag_s: float
    published: int
    usage_published: int


@dataclass
class SoakReport:
    duration_s: float
    events_published: int  # items the broker acknowledged
    deliveries: int
    connections: int
    bytes_out: int
    samples: list[Sample]
    expected: dict[str, dict[str, int]]  # account -> field -> value, from the client-side tally
    billed: dict[str, dict[str, int]]  # account -> field -> value, from the pipeline's usage
    drafts_built: int
    drain_s: float
    peak_rss_mb: dict[str, float] = field(default_factory=dict)

    @property
    def differences(self) -> list[str]:
        return [
            f"{account} {name}: billed {self.billed[account][name]}, sent {want}"
            for account, fields in sorted(self.expected.items())
            for name, want in fields.items()
            if self.billed[account][name] != want
        ]

    def series(self, name: str) -> list[float]:
        if name == "outbox_depth":
            return [float(s.outbox_depth) for s in self.samples]
        if name == "lag_s":
            return [s.lag_s for s in self.samples]
        return [s.rss_mb.get(name, 0.0) for s in self.samples]

    def summary(self) -> dict[str, Any]:
        return {
            "duration_s": round(self.duration_s, 1),
            "items_published": self.events_published,
            "deliveries": self.deliveries,
            "connections": self.connections,
            "bytes_out": self.bytes_out,
            "samples": len(self.samples),
            "peak_rss_mb": {k: round(v, 1) for k, v in self.peak_rss_mb.items()},
            "max_outbox_depth": max((s.outbox_depth for s in self.samples), default=0),
            "max_lag_s": round(max((s.lag_s for s in self.samples), default=0.0), 2),
            "drafts_built": self.drafts_built,
            "drain_s": round(self.drain_s, 1),
            "differences": len(self.differences),
        }


def halves(values: list[float], warm_up: float = 0.2) -> tuple[float, float]:
    """Means of the first and second half of ``values`` after the first ``warm_up`` fraction."""
    kept = values[int(len(values) * warm_up) :]
    middle = len(kept) // 2
    return statistics.fmean(kept[:middle]), statistics.fmean(kept[middle:])


def slope_per_hour(values: list[float], times: list[float]) -> float:
    """The least-squares slope of ``values`` over ``times`` (seconds), per hour."""
    if len(values) < 2:
        return 0.0
    return float(statistics.linear_regression(times, values).slope) * 3600


# ---------------------------------------------------------------- the run


@dataclass
class SoakShape:
    duration_s: float
    accounts: int = 3
    streams_per_account: int = 4
    sockets_per_account: int = 2
    tick_s: float = 0.1  # one item per account per tick
    churn_every_s: float = 0.5  # one connection replaced this often
    min_life_s: float = 5.0  # a connection is replaced only after this long (and lives < 60 s)
    sample_every_s: float = 1.0
    draft_every_s: float = 10.0
    drain_timeout_s: float = 120.0


@contextmanager
def soak_stack(env: dict[str, str], data: Path, accounts: list[str]) -> Iterator[tuple[BrokerNode, dict[str, int]]]:
    """Origin, broker node and worker; yields the node and the pids of each role's root process."""
    with grip_origin(data) as origin_url:
        config = soak_services(data / "soak-services.json", origin_url, accounts)
        worker = start_worker(env)
        try:
            with broker_node(env, config, "soak") as node:
                origin_pid = _origin_pid(origin_url)
                yield node, {"broker": node.process.pid, "worker": worker.process.pid, "origin": origin_pid}
        finally:
            worker.stop()


def _origin_pid(url: str) -> int:
    port = url.rsplit(":", 1)[1]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
                if b"tests.e2e.grip_origin:app" in args and port.encode() in args:
                    return int(entry)
    return 0


async def run_traffic(node: BrokerNode, pids: dict[str, int], engine: Engine, env: dict[str, str], accounts: list[str],
                      shape: SoakShape, log: Any = None) -> SoakReport:  # fmt: skip
    """The soak itself: traffic for ``shape.duration_s``, sampled; then drained and compared."""
    outbox = BrokerSettings(data_dir=Path(env["FANMETER_DATA_DIR"]), broker_node="soak").outbox_path
    channel = {a: f"fan-{a}" for a in accounts}
    published = dict.fromkeys(accounts, 0)
    acked_at: deque[float] = deque()  # monotonic time each acknowledged item was acknowledged, in order
    acked_index = 0  # how many of acked_at have been dropped from the front
    clients: list[Client] = []
    done: list[Client] = []
    samples: list[Sample] = []
    drafts = 0
    month = Month.of_day(datetime.now(UTC).date())
    draft_now = datetime.combine(month.last_day + timedelta(days=30), datetime.min.time(), UTC)
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=500)) as http:

        async def open_one(account: str, kind: str) -> None:
            client = Client(account, kind)
            await client.open(http, node.url, channel[account])
            client.published_before_open = published[account]
            clients.append(client)

        for account in accounts:
            for n in range(shape.streams_per_account + shape.sockets_per_account):
                await open_one(account, "stream" if n < shape.streams_per_account else "socket")
        started = time.monotonic()
        next_sample = next_churn = next_draft = started
        sequence = 0
        while time.monotonic() - started < shape.duration_s:
            tick = time.monotonic()
            for account in accounts:
                sequence += 1
                text = f"soak {sequence} {uuid.uuid4().hex}"
                body = {"items": [{"channel": channel[account], "formats": {
                    "http-stream": {"content": f"{text}\n"}, "ws-message": {"content": text}}}]}  # fmt: skip
                answer = await http.post(node.publish_url(f"svc-{account}"), json=body,
                                         headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
                answer.raise_for_status()
                published[account] += 1
                acked_at.append(time.monotonic())
            now = time.monotonic()
            if now >= next_churn:
                next_churn += shape.churn_every_s
                oldest = min(clients, key=lambda c: c.opened_at)
                if now - oldest.opened_at >= shape.min_life_s:
                    await _drained(oldest, published[oldest.account])
                    await oldest.close()
                    clients.remove(oldest)
                    done.append(oldest)
                    await open_one(oldest.account, oldest.kind)
            if now >= next_draft:
                next_draft += shape.draft_every_s
                await asyncio.to_thread(_build_drafts, engine, month, draft_now)
                drafts += 1
            if now >= next_sample:
                next_sample += shape.sample_every_s
                usage_published = await asyncio.to_thread(_usage_published, engine, accounts, month)
                while acked_index < usage_published and acked_at:
                    acked_at.popleft()
                    acked_index += 1
                lag = time.monotonic() - acked_at[0] if acked_at and usage_published < sum(published.values()) else 0.0
                sample = Sample(now - started, _rss(pids), await asyncio.to_thread(outbox_depth, outbox), lag,
                                sum(published.values()), usage_published)  # fmt: skip
                samples.append(sample)
                if log is not None:
                    log(sample)
            await asyncio.sleep(max(0.0, shape.tick_s - (time.monotonic() - tick)))
        duration = time.monotonic() - started
        for client in clients:
            await _drained(client, published[client.account])
            await client.close()
        done.extend(clients)
    expected = {
        a: {"connection_minutes": 0, "messages_published": published[a], "messages_delivered": 0, "bytes_out": 0}
        for a in accounts
    }
    for client in done:
        expected[client.account]["connection_minutes"] += 1
        expected[client.account]["messages_delivered"] += client.received
        expected[client.account]["bytes_out"] += client.bytes
    drain_started = time.monotonic()
    billed = await asyncio.to_thread(_wait_for_usage, engine, month, expected, shape.drain_timeout_s)
    drain = time.monotonic() - drain_started
    await asyncio.to_thread(_build_drafts, engine, month, draft_now)
    report = SoakReport(
        duration, sum(published.values()), sum(c.received for c in done), len(done), sum(c.bytes for c in done),
        samples, expected, billed, drafts + 1, drain,
    )  # fmt: skip
    for sample in samples:
        for role, mb in sample.rss_mb.items():
            report.peak_rss_mb[role] = max(report.peak_rss_mb.get(role, 0.0), mb)
    return report


async def _drained(client: Client, published: int, timeout_s: float = 30) -> None:
    """Wait until ``client`` received every item published on its channel since it opened."""
    deadline = time.monotonic() + timeout_s
    while client.received < published - client.published_before_open:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"a {client.kind} client of {client.account} received {client.received} of "
                f"{published - client.published_before_open} items"
            )
        await asyncio.sleep(0.01)


def _rss(pids: dict[str, int]) -> dict[str, float]:
    """MB per role; the worker's parent and its pool children apart (``worker`` and ``worker pool``)."""
    out: dict[str, float] = {}
    for role, root in pids.items():
        tree = process_tree(root) if root else []
        out[role] = rss_mb(root) if root else 0.0
        children = [pid for pid in tree if pid != root]
        if children:
            out[f"{role} children"] = sum(rss_mb(pid) for pid in children)
    return out


def _usage(engine: Engine, accounts: list[str], month: Month) -> dict[str, dict[str, int]]:
    out = {}
    for account in accounts:
        report = service.usage_for_month(engine, account, month)
        out[account] = {name: int(getattr(report, name)) for name in FIELDS}
    return out


def _usage_published(engine: Engine, accounts: list[str], month: Month) -> int:
    return sum(u["messages_published"] for u in _usage(engine, accounts, month).values())


def _wait_for_usage(engine: Engine, month: Month, expected: dict[str, dict[str, int]],
                    timeout_s: float) -> dict[str, dict[str, int]]:  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while True:
        seen = _usage(engine, list(expected), month)
        if seen == expected or time.monotonic() > deadline:
            return seen
        time.sleep(0.25)


def _build_drafts(engine: Engine, month: Month, now: datetime) -> None:
    """Rebuild the month's drafts from the usage so far, as if the month had closed (a sweep's work)."""
    with engine.begin() as conn:
        statements.build_drafts(conn, month, now, refresh=True)


def engine_for(url: str) -> Engine:
    return create_engine(url, poolclass=NullPool)
