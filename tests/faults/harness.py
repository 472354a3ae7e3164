"""What the fault tests share: real servers, a worker that can be killed whole, the faults
themselves (SIGKILL, a PostgreSQL restart, a RabbitMQ restart), and the check that every
account-month's usage equals an independent computation over the events sent.

The tier needs PostgreSQL and RabbitMQ (FANMETER_DATABASE_URL, FANMETER_CELERY_BROKER_URL):
it restarts them. Each test gets a database and queues of its own; the servers are always
left running (a ``finally`` starts whatever a fault stopped).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from tests.integration.independent_usage import usage_differences
from tests.stack import start_fanmeter, wait_until_ready, worker_args, worker_log

NEEDS = (
    "the faults tier restarts PostgreSQL and RabbitMQ, so it needs them: set "
    "FANMETER_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test and "
    "FANMETER_CELERY_BROKER_URL=amqp://guest:guest@127.0.0.1:5672// (`make test-faults` on the "
    "PostgreSQL pass of .ci/run), or deselect it with -m 'not faults' (what `make test` does)"
)

# Each run appends its figures here (for docs/reliability.md); FANMETER_FAULT_FIGURES names another file.
FIGURES = Path(os.environ.get("FANMETER_FAULT_FIGURES", "/tmp/fanmeter-fault-figures.jsonl"))


def missing_servers() -> str | None:
    """Why the tier cannot run here, or None."""
    database = os.environ.get("FANMETER_DATABASE_URL", "")
    broker = os.environ.get("FANMETER_CELERY_BROKER_URL", "")
    if not database.startswith("postgresql") or not broker.startswith("amqp"):
        return NEEDS
    return None


# ---------------------------------------------------------------- processes


@dataclass
class Worker:
    """A `fanmeter worker` in a process group of its own, so a SIGKILL takes its pool with it."""

    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_worker(env: dict[str, str], concurrency: int = 2) -> Worker:
    log = worker_log(env)
    process = start_fanmeter(env, log, *worker_args(concurrency), start_new_session=True)
    worker = Worker(process, log)
    try:
        wait_until_ready(process, log)
    except RuntimeError:
        worker.stop()
        raise
    return worker


@contextmanager
def workers(env: dict[str, str]) -> Iterator[list[Worker]]:
    """A list of workers the test starts (the first one started here); all stopped afterwards."""
    started = [start_worker(env)]
    try:
        yield started
    finally:
        for worker in started:
            worker.stop()


def start_ingest(env: dict[str, str], path: Path, batch_size: int, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fanmeter", "ingest", str(path), f"--batch-size={batch_size}", "--timeout=150"],
        env={**os.environ, **env, **extra},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# ---------------------------------------------------------------- the servers


def _answers(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _cluster_version() -> str:
    return sorted(os.listdir("/etc/postgresql"))[-1]


def restart_postgresql() -> float:
    """``pg_ctlcluster … restart`` (fast shutdown: every session is ended); the seconds it took."""
    started = time.monotonic()
    try:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", _cluster_version(), "main", "restart", "-m", "fast"],
            check=True,
            capture_output=True,
            timeout=60,
        )
    finally:
        ensure_postgresql()
    return time.monotonic() - started


def stop_postgresql() -> None:
    """``pg_ctlcluster … stop`` (fast shutdown); the caller starts it again with ``ensure_postgresql``."""
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", _cluster_version(), "main", "stop", "-m", "fast"],
        check=True,
        capture_output=True,
        timeout=60,
    )


def ensure_postgresql() -> None:
    if not _answers(5432):
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", _cluster_version(), "main", "start"], timeout=60)
    _wait_for(5432, "PostgreSQL")


def restart_rabbitmq(down_s: float = 1.0) -> float:
    """Stop RabbitMQ's application (every connection is closed), wait ``down_s``, start it again."""
    started = time.monotonic()
    try:
        subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=60)
        time.sleep(down_s)
    finally:
        ensure_rabbitmq()
    return time.monotonic() - started


def ensure_rabbitmq() -> None:
    subprocess.run(["rabbitmqctl", "start_app"], capture_output=True, timeout=60)
    if not _answers(5672):
        subprocess.run(["rabbitmq-server", "-detached"], capture_output=True, timeout=60)
    _wait_for(5672, "RabbitMQ")


def _wait_for(port: int, name: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not _answers(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not come back on port {port}")
        time.sleep(0.2)


# ---------------------------------------------------------------- observing the pipeline


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.01) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(poll_s)


def batches_recorded(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM ingest_batch")).scalar_one())


def batch_in_flight(engine: Engine) -> bool:
    """A worker is inside an ingest transaction of this database (staging or merging events)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND state IN ('active', 'idle in transaction') AND (query ILIKE '%stage_event%' OR query ILIKE "
        "'%INSERT INTO raw_event%')"
    )
    with engine.connect() as conn:
        return bool(conn.execute(query).scalar_one())


def rollup_in_flight(engine: Engine) -> bool:
    """A worker holds the rollup pass's advisory lock in this database: a pass is running."""
    from metering.repository import ROLLUP_LOCK_ID

    query = text(
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
        "WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database() "
        "AND ((l.classid::bigint << 32) | l.objid::bigint) = :k"
    )
    with engine.connect() as conn:
        return bool(conn.execute(query, {"k": ROLLUP_LOCK_ID}).scalar_one())


# ---------------------------------------------------------------- the check


@dataclass
class Outcome:
    """A fault's figures: events sent (distinct), billed (stored once), and usage cells that differ."""

    fault: str
    injected: int
    events_sent: int
    events_billed: int
    differences: list[str] = field(default_factory=list)

    def record(self) -> None:
        line = {**self.__dict__, "differences": len(self.differences)}
        with FIGURES.open("a") as out:
            out.write(json.dumps(line) + "\n")
        print(json.dumps(line))  # noqa: T201


def compare(engine: Engine, fault: str, injected: int, trace: list[dict[str, Any]]) -> Outcome:
    """Every account-month's usage, per service and field, against ``monthly_usage`` over the events sent."""
    with engine.connect() as conn:
        billed = int(conn.execute(text("SELECT count(*) FROM raw_event")).scalar_one())
    differences = usage_differences(engine, trace, months={"2026-01", "2026-02"})
    distinct = len({(e["source"], e["id"]) for e in trace})
    return Outcome(fault, injected, distinct, billed, differences)


def engine_for(env: dict[str, str]) -> Engine:
    """The test's own engine on the stack's database; no pool, so no connection outlives a restart."""
    return create_engine(env["FANMETER_DATABASE_URL"], poolclass=NullPool)
