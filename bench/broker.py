"""The broker side by side with Pushpin on this machine, in one run (issue "The broker", Performance).

What it measures, for fanmeter's broker and for Debian's Pushpin (message_rate and message_hwm
raised so Pushpin neither paces nor drops), both in front of the same gripcontrol origin:
  idle      memory per idle SSE connection: RSS of the broker's process tree (Pushpin: runner,
            condure, zurl, proxy, handler) before and after opening N idle SSE connections.
  fan-out   one publish to S stream subscribers: deliveries/s from the publish request's start
            to the last subscriber's receipt, and publish-to-receive latency p50/p99.
  burst     B back-to-back publishes (separate POSTs) to the same S subscribers: deliveries/s.
  connect   new connections/s opening C streams 200 at a time, and connections refused or
            failed when 200 open at once.
The load client is one asyncio (uvloop) process with raw sockets, the same for both products;
on a 2-core machine it competes with the broker for CPU, so absolute figures are a floor.
fanmeter runs with its metering outbox on and shipping off (FANMETER_BROKER_SHIP=false).

Run from the repository root:
    .venv/bin/python bench/broker.py                      # N=10000 idle, S=5000, B=20, C=2000
    .venv/bin/python bench/broker.py --idle 2000 --subs 1000 --skip-pushpin
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.e2e.broker_stack import TOKEN, broker_node, grip_origin, services_file  # noqa: E402
from tests.e2e.pushpin import pushpin  # noqa: E402

PHASES = ("idle", "fanout", "connect")


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
    ticks = 0
    for pid in tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


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


async def open_stream(target: Target, path: str, marker: bytes) -> Sub:
    """One client; a stream not open within 15 s counts as failed."""
    return await asyncio.wait_for(_open_stream(target, path, marker), timeout=15)


async def _open_stream(target: Target, path: str, marker: bytes) -> Sub:
    reader, writer = await asyncio.open_connection(target.host, target.port)
    writer.write(f"GET {target.prefix}{path} HTTP/1.1\r\nHost: {target.host}\r\n\r\n".encode())
    buffer = b""
    while marker not in buffer:
        chunk = await reader.read(65536)
        if not chunk:
            raise ConnectionError("closed before the stream opened")
        buffer += chunk
    return Sub(reader, writer)


async def open_many(target: Target, count: int, path: str, marker: bytes, at_once: int = 200) -> tuple[list[Sub], int]:
    subs: list[Sub] = []
    failed = 0
    for start in range(0, count, at_once):
        results = await asyncio.gather(
            *(open_stream(target, path, marker) for _ in range(min(at_once, count - start))), return_exceptions=True
        )
        for result in results:
            if isinstance(result, Sub):
                subs.append(result)
            else:
                failed += 1
    return subs, failed


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


async def publish(client: httpx.AsyncClient, target: Target, channel: str, n: int) -> None:
    item = {"channel": channel, "formats": {"http-stream": {"content": f"msg-{n:06d}\n"}}}
    response = await client.post(target.publish_url, json={"items": [item]}, headers=target.publish_headers)
    response.raise_for_status()


async def measure(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"product": target.name}
    if "idle" in args.only:
        out |= await measure_idle(target, args.idle)
    if "fanout" in args.only:
        out |= await measure_fanout(target, args.subs, args.burst)
    if "connect" in args.only:
        out |= await measure_connect(target, args.connects)
    return out


async def measure_idle(target: Target, idle: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    base = tree_rss_kib(target.pid)
    idle_subs, idle_failed = await open_many(target, idle, "/sse?ch=idle", b"data: ready")
    await asyncio.sleep(1)
    out["idle_connections"] = len(idle_subs)
    out["idle_failed"] = idle_failed
    out["rss_base_mib"] = base / 1024
    out["kib_per_idle_connection"] = (tree_rss_kib(target.pid) - base) / max(1, len(idle_subs))
    await close_all(idle_subs)
    return out


async def measure_fanout(target: Target, subs_n: int, burst: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    subs, _ = await open_many(target, subs_n, "/stream?ch=fan", b"stream open")
    out["subscribers"] = len(subs)
    async with httpx.AsyncClient(timeout=60) as client:
        readers = [asyncio.ensure_future(count_messages(s, 1)) for s in subs]
        started = time.perf_counter()
        await publish(client, target, "fan", 0)
        await asyncio.wait_for(asyncio.gather(*readers), timeout=120)
        last = max(s.times[0] for s in subs)
        latencies = sorted((s.times[0] - started) * 1000 for s in subs)
        out["one_publish_deliveries_per_s"] = len(subs) / (last - started)
        out["latency_ms_p50"] = statistics.median(latencies)
        out["latency_ms_p99"] = latencies[int(len(latencies) * 0.99) - 1]
        readers = [asyncio.ensure_future(count_messages(s, 1 + burst)) for s in subs]
        started = time.perf_counter()
        for n in range(1, burst + 1):
            await publish(client, target, "fan", n)
        await asyncio.wait_for(asyncio.gather(*readers), timeout=300)
        last = max(s.times[-1] for s in subs)
        out["burst_deliveries_per_s"] = len(subs) * burst / (last - started)
        out["burst_delivered"] = sum(s.seen - 1 for s in subs)
    await close_all(subs)
    return out


async def measure_connect(target: Target, connects: int) -> dict[str, Any]:
    """New connections/s, 200 at a time, with the CPU the product (and the origin) spent on each."""
    out: dict[str, Any] = {}
    cpu_before, origin_before = tree_cpu_s(target.pid), tree_cpu_s(target.origin_pid)
    started = time.perf_counter()
    conns, failed = await open_many(target, connects, "/stream?ch=conn", b"stream open")
    elapsed = time.perf_counter() - started
    cpu, origin_cpu = tree_cpu_s(target.pid) - cpu_before, tree_cpu_s(target.origin_pid) - origin_before
    out["new_connections_per_s"] = len(conns) / elapsed
    out["connect_failed"] = failed
    out["connect_cpu_us_per_conn"] = cpu * 1e6 / max(1, len(conns))
    out["origin_cpu_us_per_conn"] = origin_cpu * 1e6 / max(1, len(conns))
    await close_all(conns)
    at_once, refused = await open_many(target, 200, "/stream?ch=conn", b"stream open", at_once=200)
    out["refused_of_200_at_once"] = refused
    await close_all(at_once)
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
def pushpin_target(tmp: Path, origin: str) -> Iterator[Target]:
    with pushpin(tmp, origin, message_rate=1_000_000, message_hwm=1_000_000) as node:
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
    parser.add_argument("--connects", type=int, default=2_000)
    parser.add_argument("--skip-pushpin", action="store_true")
    parser.add_argument("--skip-fanmeter", action="store_true")
    parser.add_argument("--only", action="append", choices=PHASES, help="run only this phase (repeatable)")
    args = parser.parse_args()
    args.only = args.only or list(PHASES)
    rows = []
    with tempfile.TemporaryDirectory(prefix="fanmeter-bench-broker-") as name:
        tmp = Path(name)
        with grip_origin(tmp) as origin:
            targets = [t for t, skip in ((fanmeter_target, args.skip_fanmeter), (pushpin_target, args.skip_pushpin))
                       if not skip]  # fmt: skip
            for make in targets:
                sub = tmp / make.__name__
                sub.mkdir()
                with make(sub, origin) as target:
                    load = load_average()
                    row = uvloop.run(measure(target, args))
                    rows.append(row | {"load_average": f"{load} -> {load_average()}"})
                print(report(rows), flush=True)
    print("\nfinal\n" + report(rows))


if __name__ == "__main__":
    main()
