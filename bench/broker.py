"""The broker side by side with Pushpin on this machine, in one run (issue "The broker", Performance).

What it measures, for fanmeter's broker and for Debian's Pushpin (message_rate and message_hwm
raised so Pushpin neither paces nor drops), both in front of the same gripcontrol origin:
  idle      memory per idle SSE connection: RSS of the broker's process tree (Pushpin: runner,
            condure, zurl, proxy, handler) before and after opening N idle SSE connections.
  fan-out   one publish to S stream subscribers: deliveries/s from the publish request's start
            to the last subscriber's receipt, and publish-to-receive latency p50/p99.
  burst     B back-to-back publishes (separate POSTs) to the same S subscribers: deliveries/s.
            With --filter skip-self, every subscriber holds the channel with that filter (and a user
            meta), and every item names a sender, so each delivery is judged and none is skipped.
  connect   new connections/s opening C streams with 200 openings in flight (each one answered
            starts the next), the CPU per new connection of the product's processes, the origin and
            this client; then how many of 200 opened at the same instant were refused or failed.
The client's own garbage collector is paused while it times anything (its pauses, tens of ms with
thousands of sockets open, are not the product's). A connection answered with another status
than 200 counts as refused at once; one not open within 15 s (or closed before) as failed.
The load client is one asyncio (uvloop) process with raw sockets, the same for both products;
on a 2-core machine it competes with the broker for CPU, so absolute figures are a floor.
fanmeter runs with its metering outbox on and shipping off (FANMETER_BROKER_SHIP=false).

Run from the repository root:
    .venv/bin/python bench/broker.py                      # N=10000 idle, S=5000, B=20, C=5000
    .venv/bin/python bench/broker.py --idle 2000 --subs 1000 --skip-pushpin
    .venv/bin/python bench/broker.py --only connect --connects 5000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.e2e.broker_stack import TOKEN, broker_node, grip_origin, services_file  # noqa: E402
from tests.e2e.pushpin import pushpin  # noqa: E402

PHASES = ("idle", "fanout", "connect")
OPEN_TIMEOUT_S = 15


@contextmanager
def client_gc_paused() -> Iterator[None]:
    """No collection in this process while it times the product: what it holds now is frozen out of
    later collections, and none runs until the block ends."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


@dataclass
class Target:
    name: str
    host: str
    port: int
    prefix: str  # path prefix to the service
    publish_url: str
    publish_headers: dict[str, str]
    pid: int
    origin_pid: int


@dataclass
class Sub:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    seen: int = 0
    first_at: float = 0.0
    times: list[float] = field(default_factory=list)


def tree(root: int) -> list[int]:
    """``root`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += children.get(pid, [])
    return pids


def tree_rss_kib(root: int) -> int:
    """Resident memory of ``root`` and all its descendants."""
    total = 0
    for pid in tree(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def tree_cpu_s(root: int) -> float:
    """CPU seconds (user + system) used so far by ``root`` and all its descendants, threads included."""
    return sum(cpu_by_process(root).values())


def cpu_by_process(root: int) -> dict[str, float]:
    """CPU seconds so far of ``root`` and each descendant, by process name."""
    out: dict[str, float] = {}
    for pid in tree(root):
        try:
            name, rest = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)
        except OSError:
            continue
        fields = rest.split()
        comm = name.split("(", 1)[1]
        out[comm] = out.get(comm, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return out


def origin_pid(origin: str) -> int:
    """The uvicorn process serving the bench's GRIP origin (found by its port on the command line)."""
    port = origin.rsplit(":", 1)[1]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"tests.e2e.grip_origin:app" in args and port.encode() in args:
                return int(entry)
    raise RuntimeError(f"no origin process for {origin}")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Refused(Exception):
    """The product answered, but not 200: it refused the connection (counted at once, not after the timeout)."""


def _status_ok(buffer: bytes) -> bool | None:
    """True for a 200 status line, False for another, None while the line is incomplete."""
    if b"\r\n" not in buffer:
        return None
    return buffer.split(b"\r\n", 1)[0].split(b" ", 2)[1:2] == [b"200"]


def _refusal(buffer: bytes) -> Refused:
    """The refusal an answer other than 200 is, named by its status line."""
    return Refused(buffer.split(b"\r\n", 1)[0].decode(errors="replace"))


def _stream_request(target: Target, path: str) -> bytes:
    return f"GET {target.prefix}{path} HTTP/1.1\r\nHost: {target.host}\r\n\r\n".encode()


async def open_stream(target: Target, path: str, marker: bytes) -> Sub:
    """One client that reads on afterwards; a stream not open within 15 s counts as failed."""
    reader, writer = await asyncio.open_connection(target.host, target.port)
    try:
        async with asyncio.timeout(OPEN_TIMEOUT_S):
            writer.write(_stream_request(target, path))
            buffer = b""
            while marker not in buffer:
                chunk = await reader.read(65536)
                if not chunk:
                    raise ConnectionError("closed before the stream opened")
                buffer += chunk
                if _status_ok(buffer) is False:
                    raise _refusal(buffer)
    except BaseException:
        writer.close()
        raise
    return Sub(reader, writer)


async def open_many(target: Target, count: int, path: str, marker: bytes,
                    at_once: int = 200) -> tuple[list[Sub], int, int]:  # fmt: skip
    """Open ``count`` streams in batches of ``at_once``: the streams, how many were refused and how many failed."""
    subs: list[Sub] = []
    refused = failed = 0
    for start in range(0, count, at_once):
        results = await asyncio.gather(
            *(open_stream(target, path, marker) for _ in range(min(at_once, count - start))), return_exceptions=True
        )
        for result in results:
            if isinstance(result, Sub):
                subs.append(result)
            elif isinstance(result, Refused):
                refused += 1
            else:
                failed += 1
    return subs, refused, failed


class _Opening(asyncio.Protocol):
    """A client that only opens a stream and holds it: the connect phase's lean load (no stream objects)."""

    def __init__(self, request: bytes, marker: bytes, opened: asyncio.Future[None]) -> None:
        self.request, self.marker, self.opened = request, marker, opened
        self.buffer = b""
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self.opened.done():
            return
        self.buffer += data
        if _status_ok(self.buffer) is False:
            self.opened.set_exception(_refusal(self.buffer))
        elif self.marker in self.buffer:
            self.opened.set_result(None)
            self.buffer = b""

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed before the stream opened ({exc})"))


@dataclass
class Opened:
    held: list[asyncio.BaseTransport] = field(default_factory=list)
    refused: int = 0
    failed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def close(self) -> None:
        for transport in self.held:
            transport.close()


def _time_out(opened: asyncio.Future[None]) -> None:
    if not opened.done():
        opened.set_exception(TimeoutError())


async def open_one(target: Target, request: bytes, marker: bytes, outcome: Opened) -> None:
    """Open one stream and hold it, or count it refused (a non-200 answer) or failed (15 s, a closed socket)."""
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[None] = loop.create_future()
    timer = loop.call_later(OPEN_TIMEOUT_S, _time_out, opened)
    transport = None
    try:
        transport, _ = await loop.create_connection(lambda: _Opening(request, marker, opened), target.host,
                                                    target.port)  # fmt: skip
        await opened
        outcome.held.append(transport)
    except Exception as error:
        if transport is not None:
            transport.close()
        if isinstance(error, Refused):
            outcome.refused += 1
        else:
            outcome.failed += 1
        reason = str(error) if isinstance(error, Refused) else type(error).__name__
        outcome.reasons[reason] = outcome.reasons.get(reason, 0) + 1
    finally:
        timer.cancel()


async def open_window(target: Target, count: int, path: str, marker: bytes, window: int) -> Opened:
    """Open ``count`` streams keeping ``window`` openings in flight: each finished one starts the next."""
    request = _stream_request(target, path)
    outcome = Opened()
    left = count

    async def opener() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await open_one(target, request, marker, outcome)

    await asyncio.gather(*(opener() for _ in range(window)))
    return outcome


async def close_all(subs: list[Sub]) -> None:
    for sub in subs:
        sub.writer.close()
    await asyncio.sleep(0.5)


async def count_messages(sub: Sub, want: int) -> None:
    while sub.seen < want:
        chunk = await sub.reader.read(65536)
        if not chunk:
            return
        now = time.perf_counter()
        found = chunk.count(b"msg-")
        sub.times += [now] * found
        sub.seen += found


# --filter skip-self: every subscriber holds its channel with that filter and the user "sub"; items carry
# the sender "publisher", so each is judged for every subscriber and reaches them all.
FILTER_META = {"sender": "publisher"}


async def publish(client: httpx.AsyncClient, target: Target, channel: str, n: int, meta: bool = False) -> None:
    item: dict[str, Any] = {"channel": channel, "formats": {"http-stream": {"content": f"msg-{n:06d}\n"}}}
    if meta:
        item["meta"] = FILTER_META
    response = await client.post(target.publish_url, json={"items": [item]}, headers=target.publish_headers)
    response.raise_for_status()


async def measure(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"product": target.name}
    if "idle" in args.only:
        out |= await measure_idle(target, args.idle)
    if "fanout" in args.only:
        out |= await measure_fanout(target, args.subs, args.burst, args.filter)
    if "connect" in args.only:
        out |= await measure_connect(target, args.connects)
    return out


async def measure_idle(target: Target, idle: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    base = tree_rss_kib(target.pid)
    idle_subs, idle_refused, idle_failed = await open_many(target, idle, "/sse?ch=idle", b"data: ready")
    await asyncio.sleep(1)
    out["idle_connections"] = len(idle_subs)
    out["idle_refused"] = idle_refused
    out["idle_failed"] = idle_failed
    out["rss_base_mib"] = base / 1024
    out["kib_per_idle_connection"] = (tree_rss_kib(target.pid) - base) / max(1, len(idle_subs))
    await close_all(idle_subs)
    return out


async def measure_fanout(target: Target, subs_n: int, burst: int, filter_name: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    path = f"/fstream?ch=fan&filters={filter_name}&user=sub" if filter_name else "/stream?ch=fan"
    subs, _, _ = await open_many(target, subs_n, path, b"stream open")
    out["subscribers"] = len(subs)
    if filter_name:
        out["subscription_filter"] = filter_name
    with client_gc_paused():
        out |= await _publish_to(target, subs, burst, meta=filter_name is not None)
    await close_all(subs)
    return out


async def _publish_to(target: Target, subs: list[Sub], burst: int, meta: bool = False) -> dict[str, Any]:
    """One publish, then ``burst`` back to back, to the open ``subs``."""
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(timeout=60) as client:
        await publish(client, target, "warm-up", 0)  # the client's first request costs it ~15 ms: not timed
        readers = [asyncio.ensure_future(count_messages(s, 1)) for s in subs]
        started = time.perf_counter()
        await publish(client, target, "fan", 0, meta)
        await asyncio.wait_for(asyncio.gather(*readers), timeout=120)
        got = [s for s in subs if s.times]  # a stream the product closed before the item never gets it
        last = max(s.times[0] for s in got)
        latencies = sorted((s.times[0] - started) * 1000 for s in got)
        out["one_publish_deliveries_per_s"] = len(got) / (last - started)
        out["one_publish_not_received"] = len(subs) - len(got)
        out["latency_ms_p50"] = statistics.median(latencies)
        out["latency_ms_p99"] = latencies[int(len(latencies) * 0.99) - 1]
        subs = got
        readers = [asyncio.ensure_future(count_messages(s, 1 + burst)) for s in subs]
        cpu_before, started = tree_cpu_s(target.pid), time.perf_counter()
        for n in range(1, burst + 1):
            await publish(client, target, "fan", n, meta)
        await asyncio.wait_for(asyncio.gather(*readers), timeout=300)
        last = max(s.times[-1] for s in subs)
        out["burst_delivered"] = sum(s.seen - 1 for s in subs)
        out["burst_deliveries_per_s"] = out["burst_delivered"] / (last - started)
        out["burst_cpu_us_per_delivery"] = (tree_cpu_s(target.pid) - cpu_before) * 1e6 / max(1, out["burst_delivered"])
    return out


async def measure_connect(target: Target, connects: int) -> dict[str, Any]:
    """New connections/s with 200 openings in flight, the CPU the product, the origin and this client spent on
    each, then one burst of 200 opened at the same instant."""
    out: dict[str, Any] = {}
    cpu_before, origin_before = cpu_by_process(target.pid), tree_cpu_s(target.origin_pid)
    with client_gc_paused():
        client_before, started = time.process_time(), time.perf_counter()
        opened = await open_window(target, connects, "/stream?ch=conn", b"stream open", window=200)
        elapsed = time.perf_counter() - started
    client_cpu = time.process_time() - client_before
    by_process = {k: v - cpu_before.get(k, 0.0) for k, v in cpu_by_process(target.pid).items()}
    cpu, origin_cpu = sum(by_process.values()), tree_cpu_s(target.origin_pid) - origin_before
    held = max(1, len(opened.held))
    parts = ", ".join(f"{k} {v * 1e6 / held:,.0f}" for k, v in sorted(by_process.items(), key=lambda kv: -kv[1]))
    print(f"{target.name}: CPU us per new connection by process: {parts}", flush=True)
    out["new_connections_per_s"] = len(opened.held) / elapsed
    out["connect_refused"] = opened.refused
    out["connect_failed"] = opened.failed
    out["connect_cpu_us_per_conn"] = cpu * 1e6 / held
    out["origin_cpu_us_per_conn"] = origin_cpu * 1e6 / held
    out["client_cpu_us_per_conn"] = client_cpu * 1e6 / held
    opened.close()
    await asyncio.sleep(1)
    burst = await open_window(target, 200, "/stream?ch=conn", b"stream open", window=200)
    out["refused_of_200_at_once"] = burst.refused
    out["failed_of_200_at_once"] = burst.failed
    burst.close()
    for outcome in (opened, burst):
        for reason, n in outcome.reasons.items():
            print(f"{target.name}: {n} x {reason}", flush=True)
    await asyncio.sleep(0.5)
    return out


@contextmanager
def fanmeter_target(tmp: Path, origin: str) -> Iterator[Target]:
    env = {"FANMETER_DATA_DIR": str(tmp / "data"), "FANMETER_BROKER_SHIP": "false",
           "FANMETER_BROKER_QUEUE_SIZE": "1000"}  # fmt: skip
    (tmp / "data").mkdir()
    config = services_file(tmp / "services.json", origin)
    with broker_node(env, config, "bench") as node:
        yield Target("fanmeter", "127.0.0.1", node.port, "/s/svc-a", node.publish_url(),
                     {"Authorization": f"Bearer {TOKEN}"}, node.process.pid, origin_pid(origin))  # fmt: skip


@contextmanager
def pushpin_target(tmp: Path, origin: str, log_level: int) -> Iterator[Target]:
    with pushpin(tmp, origin, message_rate=1_000_000, message_hwm=1_000_000, log_level=log_level) as node:
        port = int(node.url.rsplit(":", 1)[1])
        yield Target("pushpin", "127.0.0.1", port, "", node.control_uri + "/publish/", {}, node.process.pid,
                     origin_pid(origin))  # fmt: skip


def report(rows: list[dict[str, Any]]) -> str:
    keys = [k for k in rows[0] if k != "product"]
    lines = [f"{'':32}" + "".join(f"{r['product']:>14}" for r in rows)]
    for key in keys:
        cells = "".join(_cell(r[key]) for r in rows)
        lines.append(f"{key:32}{cells}")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:>14,.1f}"
    return f"{value:>14,}" if isinstance(value, int) else f"  {value}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--idle", type=int, default=10_000)
    parser.add_argument("--subs", type=int, default=5_000)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--connects", type=int, default=5_000)
    parser.add_argument("--skip-pushpin", action="store_true")
    parser.add_argument("--skip-fanmeter", action="store_true")
    parser.add_argument("--only", action="append", choices=PHASES, help="run only this phase (repeatable)")
    parser.add_argument("--filter", choices=["skip-self"],
                        help="fan-out: every subscriber holds its channel with this subscription filter")  # fmt: skip
    parser.add_argument("--pushpin-log-level", type=int, default=1,
                        help="Pushpin's log_level (2, Debian's default, logs each request in 3 processes)")  # fmt: skip
    args = parser.parse_args()
    args.only = args.only or list(PHASES)
    rows = []
    with tempfile.TemporaryDirectory(prefix="fanmeter-bench-broker-") as name:
        tmp = Path(name)
        with grip_origin(tmp) as origin:
            targets: list[tuple[str, Callable[[Path, str], AbstractContextManager[Target]], bool]] = [
                ("fanmeter", fanmeter_target, args.skip_fanmeter),
                ("pushpin", partial(pushpin_target, log_level=args.pushpin_log_level), args.skip_pushpin),
            ]
            for name, make, skip in targets:
                if skip:
                    continue
                sub = tmp / name
                sub.mkdir()
                with make(sub, origin) as target:
                    load = load_average()
                    row = uvloop.run(measure(target, args))
                    rows.append(row | {"load_average": f"{load} -> {load_average()}"})
                print(report(rows), flush=True)
    print("\nfinal\n" + report(rows))


if __name__ == "__main__":
    main()
