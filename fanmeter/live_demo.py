"""Live traffic for `fanmeter up`: a broker and a demo origin, real clients and real publishes.

The broker serves one service (account ``live-demo``, service ``live-news``) in front of
``fanmeter.demo_origin``; a few SSE and HTTP-stream clients connect through it, a publisher
posts messages to its publish API, and the broker's metering reaches usage through the same
worker as everything else.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from fanmeter.demo_origin import KEY_VARIABLE

ACCOUNT, SERVICE, TOKEN = "live-demo", "live-news", "live-demo-token"
GRIP_KEY = "live-demo-grip-key-32-bytes-or-more"  # the broker signs Grip-Sig with it; the demo origin verifies it
CLIENTS, MESSAGES = 5, 4
LOG = "live-demo.log"  # in the data directory: the broker's and the origin's output


@dataclass(frozen=True)
class LiveDemo:
    broker_url: str
    origin_url: str

    @property
    def client_url(self) -> str:
        return f"{self.broker_url}/s/{SERVICE}/stream?ch=news"

    @property
    def publish_url(self) -> str:
        return f"{self.broker_url}/service/{SERVICE}/publish/"


def _port(preferred: int) -> int:
    """``preferred`` if it is free, else any free port."""
    for candidate in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free port")


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answers on port {port}")


@contextmanager
def running(data_dir: Path) -> Iterator[LiveDemo]:
    """Start the demo origin and a broker node (``up``), stop both afterwards."""
    origin_port, broker_port = _port(7998), _port(7999)
    config = data_dir / "live-demo-services.json"
    service = {"service_id": SERVICE, "account_id": ACCOUNT, "origin": f"http://127.0.0.1:{origin_port}",
               "publish_tokens": [TOKEN], "grip_key": GRIP_KEY, "fanout_enabled": True}  # fmt: skip
    config.write_text(json.dumps({"services": [service]}))
    log = (data_dir / LOG).open("ab")
    origin = subprocess.Popen([sys.executable, "-m", "uvicorn", "fanmeter.demo_origin:app", "--port", str(origin_port),
                               "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, KEY_VARIABLE: GRIP_KEY})  # fmt: skip
    args = ["--port", str(broker_port), "--config", str(config), "--node", "up"]
    broker = subprocess.Popen([sys.executable, "-m", "fanmeter", "broker", *args], stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "FANMETER_BROKER_SHIP_INTERVAL_MS": "100"})  # fmt: skip
    try:
        _wait_for_port(origin_port, origin)
        _wait_for_port(broker_port, broker)
        yield LiveDemo(f"http://127.0.0.1:{broker_port}", f"http://127.0.0.1:{origin_port}")
    finally:
        stop_all((broker, origin), STOP_S)  # the broker hands held connections back within 5 s
        log.close()


STOP_S = 15.0


def stop_all(processes: Sequence[subprocess.Popen[bytes]], timeout_s: float) -> None:
    """SIGTERM every process at once; after ``timeout_s`` in all, SIGKILL any left, and their children."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        process.terminate()
    deadline = time.monotonic() + timeout_s
    for process in running:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for pid in [*descendants(process.pid), process.pid]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            process.wait()


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, theirs, ...), from /proc; empty where there is no /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def traffic(demo: LiveDemo) -> int:
    """Connect CLIENTS stream clients, publish MESSAGES messages, return how many deliveries they received."""
    return asyncio.run(_traffic(demo))


async def _traffic(demo: LiveDemo) -> int:
    async with httpx.AsyncClient(timeout=30) as client:
        streams = [client.stream("GET", demo.client_url) for _ in range(CLIENTS)]
        responses = [await s.__aenter__() for s in streams]
        readers = [r.aiter_lines() for r in responses]
        for lines in readers:
            assert await anext(lines) == "welcome"  # the broker holds the subscription from here on
        headers = {"Authorization": f"Bearer {TOKEN}"}
        for n in range(MESSAGES):
            item = {"channel": "news", "formats": {"http-stream": {"content": f"headline {n}\n"}}}
            (await client.post(demo.publish_url, json={"items": [item]}, headers=headers)).raise_for_status()
        received = 0
        for lines in readers:
            for _ in range(MESSAGES):
                await anext(lines)
                received += 1
        for stream in streams:
            await stream.__aexit__(None, None, None)
    return received
