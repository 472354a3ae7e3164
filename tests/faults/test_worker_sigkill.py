"""SIGKILL of a Celery worker (its whole process group: the pool dies with it) in the middle of a
batch and in the middle of a rollup pass, while `fanmeter ingest` keeps sending. A new worker takes
over; RabbitMQ redelivers what the dead one held (acks late), PostgreSQL rolled back what it had
begun. Afterwards every account-month's usage equals the independent computation: nothing lost,
nothing counted twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from tests.faults.harness import (
    batch_in_flight,
    batches_recorded,
    compare,
    engine_for,
    rollup_in_flight,
    start_ingest,
    start_worker,
    wait_until,
    workers,
)
from tests.strategies import generate_trace

KILLS = 2  # per test: each kill lands in the state it waits for, with the next worker taking over


def _sigkill_during(
    stack: dict[str, str], tmp_path: Path, seed: int, fault: str, in_flight: Callable[[Engine], bool]
) -> None:
    # Mostly connections: every batch leaves connection events for a rollup pass to fold.
    trace = generate_trace(seed=seed, n_events=5_000, duplicate_rate=0.02)
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in trace) + "\n")
    engine = engine_for(stack)
    with workers(stack) as started:
        ingest = start_ingest(stack, path, 40)
        try:
            wait_until(lambda: batches_recorded(engine) >= 10, 60, "the ingest to be under way", poll_s=0.05)
            for _ in range(KILLS):
                wait_until(lambda: in_flight(engine), 60, fault, poll_s=0.002)
                started[-1].kill()
                started.append(start_worker(stack))
            out, err = ingest.communicate(timeout=150)
        finally:
            if ingest.poll() is None:
                ingest.kill()
        assert ingest.returncode == 0, err[-3000:]
        assert "Traceback" not in err
        outcome = compare(engine, fault, KILLS, trace)
    outcome.record()
    assert outcome.events_billed == outcome.events_sent
    assert outcome.differences == [], outcome.differences[:20]


def test_sigkill_of_a_worker_in_the_middle_of_a_batch_loses_and_doubles_nothing(
    stack: dict[str, str], tmp_path: Path
) -> None:
    _sigkill_during(stack, tmp_path, 51, "SIGKILL of a worker in the middle of a batch", batch_in_flight)


def test_sigkill_of_a_worker_in_the_middle_of_a_rollup_loses_and_doubles_nothing(
    stack: dict[str, str], tmp_path: Path
) -> None:
    _sigkill_during(stack, tmp_path, 52, "SIGKILL of a worker in the middle of a rollup", rollup_in_flight)
