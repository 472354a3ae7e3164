"""A real metering stack for integration and end-to-end tests.

The database and Celery broker follow the environment exactly as fanmeter does:
with nothing set, a SQLite file and Celery over SQLite in a temporary directory;
with ``FANMETER_DATABASE_URL`` pointing at PostgreSQL, a fresh database created on
that server for the test session; ``FANMETER_CELERY_BROKER_URL`` is used as given,
with a queue of the session's own so nothing else's messages interfere.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from metering.settings import MeteringSettings


def stack_environment(data_dir: Path) -> dict[str, str]:
    """FANMETER_* variables for a stack whose files live in ``data_dir``."""
    env = {"FANMETER_DATA_DIR": str(data_dir), "FANMETER_CELERY_QUEUE": f"test-{uuid.uuid4().hex[:8]}"}
    if os.environ.get("FANMETER_CELERY_BROKER_URL"):
        env["FANMETER_CELERY_BROKER_URL"] = os.environ["FANMETER_CELERY_BROKER_URL"]
    return env


@contextmanager
def fresh_database() -> Iterator[str | None]:
    """Yield a database URL of the session's own, or None for the embedded SQLite default."""
    server_url = os.environ.get("FANMETER_DATABASE_URL")
    if not server_url or server_url.startswith("sqlite"):
        yield None
        return
    name = f"fanmeter_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@contextmanager
def migrated_stack(data_dir: Path, upgrade: Callable[[dict[str, str]], None]) -> Iterator[dict[str, str]]:
    """The environment of a stack whose database (SQLite, or a fresh PostgreSQL one) ``upgrade`` migrated."""
    env = stack_environment(data_dir)
    with fresh_database() as url:
        if url:
            env["FANMETER_DATABASE_URL"] = url
        upgrade(env)
        yield env


def settings_for(env: dict[str, str]) -> MeteringSettings:
    return MeteringSettings(**{k.removeprefix("FANMETER_").lower(): v for k, v in env.items()})


def start_fanmeter(
    env: dict[str, str], log: Path, *args: str, start_new_session: bool = False
) -> subprocess.Popen[bytes]:
    """`fanmeter <args>` as a process with the stack's environment, its output (both streams) in ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "fanmeter", *args],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=start_new_session,
        )


def worker_log(env: dict[str, str]) -> Path:
    """A new log file for a worker, in the stack's data directory."""
    return Path(env["FANMETER_DATA_DIR"]) / f"worker-{uuid.uuid4().hex[:6]}.log"


def worker_args(concurrency: int) -> tuple[str, ...]:
    """The arguments of a `fanmeter worker` the tests start: ``concurrency`` processes, no beat."""
    return ("worker", f"--concurrency={concurrency}", "--no-beat")


@contextmanager
def running_worker(env: dict[str, str], concurrency: int = 2) -> Iterator[subprocess.Popen[bytes]]:
    """A real `fanmeter worker` process (not eager mode), stopped and reaped afterwards."""
    log = worker_log(env)
    process = start_fanmeter(env, log, *worker_args(concurrency))
    try:
        wait_until_ready(process, log)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_ready(process: subprocess.Popen[bytes], log: Path, timeout_s: float = 60) -> None:
    """Wait for Celery's "ready" line, so a test never races the worker's start-up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited at start:\n{log.read_text()}")
        if " ready." in log.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise RuntimeError(f"worker not ready after {timeout_s} s:\n{log.read_text()}")


@dataclass(frozen=True)
class RunningAdmin:
    """A `fanmeter admin` process the tests started, and where it answers."""

    url: str
    port: int
    process: subprocess.Popen[bytes]


@contextmanager
def running_admin(env: dict[str, str], log: Path) -> Iterator[RunningAdmin]:
    """`fanmeter admin` (uvicorn) on a free port of the stack ``env``, once /healthz answers 200;
    terminated and reaped afterwards. Its output goes to ``log``."""
    port = free_port()
    process = start_fanmeter(env, log, "admin", "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_health(url, process, log)
        yield RunningAdmin(url, port, process)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_for_health(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"fanmeter admin exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"fanmeter admin did not answer:\n{log.read_text()}")


def run_cli(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the installed `fanmeter` command line with the stack's environment."""
    return subprocess.run(
        [sys.executable, "-m", "fanmeter", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    """A TCP port nothing listens on right now, for a server a test starts.

    Chosen below the kernel's ephemeral range: a port the kernel hands out (bind to port 0) can be
    taken as the local port of any outgoing connection between the test choosing it and the server
    binding it, which made a Pushpin start in CI fail with "unable to bind".
    """
    low = _ephemeral_range_start()
    for _ in range(200):
        port = random.randrange(PORTS_FROM, low)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free TCP port between {PORTS_FROM} and {low}")


PORTS_FROM = 20000


def _ephemeral_range_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default
