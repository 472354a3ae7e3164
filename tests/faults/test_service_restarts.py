"""PostgreSQL, and separately RabbitMQ, restarted in the middle of `fanmeter ingest`.

The command waits, says once on stderr what it waits for, resumes and finishes with exit 0 and no
traceback; the worker reconnects to both. A database gone for longer than the wait limit ends the
command with one line and exit 1, and running the same command again completes the job without
counting anything twice. Afterwards every account-month's usage equals the independent computation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.faults.harness import (
    Outcome,
    batches_recorded,
    compare,
    engine_for,
    ensure_postgresql,
    ensure_rabbitmq,
    restart_postgresql,
    restart_rabbitmq,
    start_ingest,
    stop_postgresql,
    wait_until,
    workers,
)
from tests.stack import run_cli, running_admin
from tests.strategies import generate_trace

EVENTS, BATCH = 6_000, 40  # 150 batches: the fault lands while most of them are still to come


def _trace(tmp_path: Path, seed: int) -> tuple[list[dict[str, Any]], Path]:
    trace = generate_trace(seed=seed, n_events=EVENTS, duplicate_rate=0.02)
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in trace) + "\n")
    return trace, path


def _waiting_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("waiting for")]


def _record_and_check(outcome: Outcome) -> None:
    """Append the fault's figures, then: every event sent billed once, and no usage cell differs."""
    outcome.record()
    assert outcome.events_billed == outcome.events_sent
    assert outcome.differences == []


def _ingest_through(stack: dict[str, str], tmp_path: Path, seed: int, fault: str, inject: Any) -> str:
    trace, path = _trace(tmp_path, seed)
    engine = engine_for(stack)
    with workers(stack):
        ingest = start_ingest(stack, path, BATCH)
        try:
            wait_until(lambda: batches_recorded(engine) >= 40, 60, "the ingest to be under way", poll_s=0.05)
            inject()
            out, err = ingest.communicate(timeout=150)
        finally:
            if ingest.poll() is None:
                ingest.kill()
        assert ingest.returncode == 0, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
        assert f"events read: {len(trace)}" in out
        outcome = compare(engine, fault, 1, trace)
    _record_and_check(outcome)
    return err


def test_a_postgresql_restart_during_an_ingest_is_waited_out_and_nothing_is_lost(
    stack: dict[str, str], tmp_path: Path
) -> None:
    err = _ingest_through(stack, tmp_path, 31, "PostgreSQL restart during fanmeter ingest", restart_postgresql)
    waiting = _waiting_lines(err)
    assert len(waiting) <= 1, waiting  # said once (or not at all, if no call of the command fell in the gap)
    assert all("database" in line for line in waiting), waiting


def test_a_rabbitmq_restart_during_an_ingest_is_waited_out_and_nothing_is_lost(
    stack: dict[str, str], tmp_path: Path
) -> None:
    err = _ingest_through(stack, tmp_path, 32, "RabbitMQ restart during fanmeter ingest", restart_rabbitmq)
    waiting = _waiting_lines(err)
    assert len(waiting) <= 1, waiting  # the command may have sent everything already: then only the worker saw it
    assert all("message broker" in line for line in waiting), waiting


def test_an_ingest_started_while_rabbitmq_is_down_waits_says_so_once_and_finishes(
    stack: dict[str, str], tmp_path: Path
) -> None:
    trace, path = _trace(tmp_path, 34)
    engine = engine_for(stack)
    errors = tmp_path / "ingest.err"
    with workers(stack):
        subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=60)
        try:
            with errors.open("w") as err_file:
                ingest = subprocess.Popen(
                    [sys.executable, "-m", "fanmeter", "ingest", str(path), f"--batch-size={BATCH}", "--timeout=150"],
                    env={**os.environ, **stack}, stdout=subprocess.PIPE, stderr=err_file, text=True,
                )  # fmt: skip
            # The command reaches the stopped broker, says so, and keeps waiting.
            wait_until(lambda: "waiting for" in errors.read_text(), 60, "the waiting line", poll_s=0.1)
            time.sleep(2)
            assert ingest.poll() is None, errors.read_text()[-3000:]
        finally:
            ensure_rabbitmq()
        out, _ = ingest.communicate(timeout=150)
        err = errors.read_text()
        assert ingest.returncode == 0, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
        waiting = _waiting_lines(err)
        assert len(waiting) == 1, err[-3000:]
        assert "message broker" in waiting[0] and "amqp://guest:**@127.0.0.1:5672" in waiting[0], waiting
        assert f"events read: {len(trace)}" in out
        outcome = compare(engine, "RabbitMQ down as fanmeter ingest starts, back once it waits", 1, trace)
    _record_and_check(outcome)


def test_a_database_gone_past_the_limit_ends_with_one_line_and_a_rerun_finishes_without_double_counting(
    stack: dict[str, str], tmp_path: Path
) -> None:
    trace, path = _trace(tmp_path, 33)
    engine = engine_for(stack)
    with workers(stack):
        ingest = start_ingest(stack, path, BATCH, FANMETER_WAIT_FOR_SERVICES_SECONDS="2")
        try:
            wait_until(lambda: batches_recorded(engine) >= 40, 60, "the ingest to be under way", poll_s=0.05)
            stop_postgresql()
            _, err = ingest.communicate(timeout=60)
        finally:
            ensure_postgresql()
            if ingest.poll() is None:
                ingest.kill()
        assert ingest.returncode == 1, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
        error_lines = [line for line in err.splitlines() if line.startswith("Error:")]
        assert len(error_lines) == 1 and "unreachable for" in error_lines[0], err[-3000:]
        assert "Run the same command again" in error_lines[0]
        assert len(_waiting_lines(err)) == 1, err[-3000:]

        again = run_cli(stack, "ingest", str(path), f"--batch-size={BATCH}", "--timeout=150", timeout=200)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "Traceback" not in again.stderr
        outcome = compare(engine, "PostgreSQL stopped past the wait limit, then the same ingest re-run", 1, trace)
    _record_and_check(outcome)


def test_the_admin_api_answers_503_with_a_reason_while_the_database_is_down_and_recovers(
    stack: dict[str, str], tmp_path: Path
) -> None:
    import httpx

    token = run_cli(stack, "token", "create", "--role", "admin", "--email", "ops@example.com").stdout.split()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    with running_admin(stack, tmp_path / "admin.log") as admin:
        url = f"{admin.url}/v1/accounts"

        def status() -> int:
            try:
                return httpx.get(url, headers=headers, timeout=5).status_code
            except httpx.TransportError:
                return 0

        wait_until(lambda: status() == 200, 60, "the admin service", poll_s=0.2)
        stop_postgresql()
        try:
            down = httpx.get(url, headers=headers, timeout=10)
        finally:
            ensure_postgresql()
        started = time.monotonic()
        wait_until(lambda: status() == 200, 30, "the admin API to recover", poll_s=0.2)
        recovered_s = time.monotonic() - started
    assert down.status_code == 503, down.text
    assert down.json()["detail"].startswith("the database is unavailable"), down.text
    assert down.headers["Retry-After"] == "5"
    assert "Traceback" not in (tmp_path / "admin.log").read_text(errors="replace")
    print(f"admin API: 503 while down, 200 again {recovered_s:.1f} s after PostgreSQL was back")  # noqa: T201
