"""Processes for broker tests: a GRIP origin and `fanmeter broker` nodes, each a real uvicorn subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
GRIP_KEY = "origin-secret"
TOKEN = "publish-token-a"


class ExitedAtStart(RuntimeError):
    """A server process ended before it was ready."""


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 30) -> None:
    """Wait until ``port`` accepts connections (the server's own readiness), failing fast if it died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ExitedAtStart(f"process exited at start:\n{log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} not answering after {timeout_s} s:\n{log.read_text(errors='replace')}")


@contextmanager
def running(args: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        process = subprocess.Popen(args, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_for_port(port, process, log)
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            # A graceful stop flushes deliveries and ships the outbox; on a loaded machine that can
            # take a while, and a kill here would leave events unshipped until the node's restart.
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def grip_origin(tmp: Path, tls: bool = False, key: str = GRIP_KEY, keys_file: Path | None = None) -> Iterator[str]:
    """The gripcontrol origin (tests/e2e/grip_origin.py), validating Grip-Sig with ``key`` (or one of
    the keys in ``keys_file``, read on each request); yields its base URL."""
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "tests.e2e.grip_origin:app", "--port", str(port), "--log-level", "warning"]
    if tls:
        key, cert = tmp / "origin.key", tmp / "origin.crt"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
             "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, capture_output=True,
        )  # fmt: skip
        args += ["--ssl-keyfile", str(key), "--ssl-certfile", str(cert)]
    env = {"GRIP_ORIGIN_KEY": key, **({"GRIP_ORIGIN_KEYS_FILE": str(keys_file)} if keys_file else {})}
    with running(args, env, port, tmp / f"origin-{port}.log"):
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"


def services_file(path: Path, origin: str, tls_origin: str | None = None, account: str = "acct-a") -> Path:
    """Services: ``svc-a`` (Fanout on), ``svc-off`` (Fanout off), ``svc-cors`` (automatic CORS on),
    ``svc-tls`` (self-signed origin)."""
    base = {"account_id": account, "origin": origin, "publish_tokens": [TOKEN], "grip_key": GRIP_KEY}
    services = [
        {**base, "service_id": "svc-a", "fanout_enabled": True, "hosts": ["svc-a.test"]},
        {**base, "service_id": "svc-off", "fanout_enabled": False},
        {**base, "service_id": "svc-cors", "fanout_enabled": True, "cross_origin": True},
    ]
    if tls_origin:
        services.append({**base, "service_id": "svc-tls", "fanout_enabled": True, "origin": tls_origin})
    path.write_text(json.dumps({"services": services}))
    return path


@dataclass(frozen=True)
class BrokerNode:
    url: str
    port: int
    node: str
    process: subprocess.Popen[bytes]
    log: Path

    def publish_url(self, service_id: str = "svc-a") -> str:
        return f"{self.url}/service/{service_id}/publish/"


@contextmanager
def broker_node(env: dict[str, str], config: Path | None, node: str, extra_env: dict[str, str] | None = None,
                port: int | None = None) -> Iterator[BrokerNode]:  # fmt: skip
    """`fanmeter broker` as a user runs it, on a port of its own (no ``config``: the database's services)."""
    port = port or free_port()
    log = Path(env["FANMETER_DATA_DIR"]) / f"broker-{node}.log"
    args = [sys.executable, "-m", "fanmeter", "broker", "--port", str(port), "--node", node]
    args += ["--config", str(config)] if config else []
    with running(args, {**env, **(extra_env or {})}, port, log) as process:
        yield BrokerNode(f"http://127.0.0.1:{port}", port, node, process, log)
