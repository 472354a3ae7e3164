"""`fanmeter ingest`: stream event files through the real Celery pipeline and wait for the result."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import click

from fanmeter.reader import iter_event_texts
from metering import service
from metering.client import PipelineClient, batch_id

STALL_HINT_S = 30.0
# With no batch processed for this long, batches the pipeline has not recorded are sent again under
# their ids (a message a restarting message broker dropped before storing it); the pipeline
# records a batch once, so a batch that was merely slow is not counted twice.
RESEND_AFTER_S = 20.0
# How often progress is polled: a few cheap queries; the wait ends at most this long after the work.
POLL_S = 0.25


@dataclass(frozen=True)
class IngestRun:
    run_id: str
    batches: int
    events: int
    # What was sent, to send again the batches the pipeline never recorded (empty: nothing to resend).
    paths: tuple[Path, ...] = ()
    batch_size: int = 0


def send_files(
    pipeline: PipelineClient, paths: Iterable[Path], batch_size: int, show_progress: bool = True
) -> IngestRun:
    """Send the events of ``paths`` as Celery batches; return the run to wait for."""
    paths = list(paths)
    run_id = uuid.uuid4().hex[:16]
    batches = events = 0
    total = sum(p.stat().st_size for p in paths)
    with click.progressbar(length=total, label="sending ", show_pos=True, hidden=not show_progress) as bar:
        for batch in _batches(_texts(paths, bar.update), batch_size):
            pipeline.submit(batch_id(run_id, batches), batch)
            batches += 1
            events += len(batch)
    return IngestRun(run_id, batches, events, tuple(paths), batch_size)


def resend_missing(pipeline: PipelineClient, run: IngestRun) -> int:
    """Send again, under the same ids, the batches of ``run`` the pipeline has not recorded; return how many."""
    if not run.paths:
        return 0
    ids = [batch_id(run.run_id, index) for index in range(run.batches)]
    recorded = pipeline.recorded(ids)
    missing = {batch for batch in ids if batch not in recorded}
    resent = 0
    for index, batch in enumerate(_batches(_texts(list(run.paths), lambda _: None), run.batch_size)):
        if batch_id(run.run_id, index) in missing:
            pipeline.submit(batch_id(run.run_id, index), batch)
            resent += 1
    return resent


def _texts(paths: list[Path], advance: Callable[[int], None]) -> Iterator[str]:
    for path in paths:
        with path.open(encoding="utf-8", errors="replace") as stream:
            for text in iter_event_texts(stream):
                advance(len(text) + 1)
                yield text


def _batches(texts: Iterator[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def wait_for(
    pipeline: PipelineClient, run: IngestRun, timeout_s: float, show_progress: bool = True
) -> service.IngestProgress:
    """Block until every batch of ``run`` is ingested and rolled up; nudge the rollup when it lags."""
    deadline = time.monotonic() + timeout_s
    last_nudge = last_change = last_resend = time.monotonic()
    hinted = False
    with click.progressbar(length=run.batches, label="processing", show_pos=True, hidden=not show_progress) as bar:
        while True:
            progress = pipeline.progress(run.run_id)
            if progress.batches_done > bar.pos:
                bar.update(progress.batches_done - bar.pos)
                last_change = time.monotonic()
            elif not hinted and time.monotonic() - last_change > STALL_HINT_S:
                click.echo(
                    f"\nno batch processed for {STALL_HINT_S:.0f} s: is a worker running (`fanmeter worker`)?", err=True
                )
                hinted = True
            if progress.batches_done >= run.batches and progress.pending_left == 0:
                if progress.duplicates == 0 or _earlier_runs_settled(pipeline, deadline):
                    return progress
            if time.monotonic() > deadline:
                raise click.ClickException(
                    f"gave up after {timeout_s:.0f} s: {progress.batches_done} of {run.batches} batches ingested, "
                    f"{progress.pending_left} batches' connection events waiting for rollup. "
                    "Is a worker running (`fanmeter worker`)?"
                )
            stalled = time.monotonic() - max(last_change, last_resend)
            if progress.batches_done < run.batches and stalled > RESEND_AFTER_S:
                resend_missing(pipeline, run)
                last_resend = time.monotonic()
            if progress.batches_done >= run.batches and time.monotonic() - last_nudge > 5:
                pipeline.nudge_rollup()
                last_nudge = time.monotonic()
            time.sleep(POLL_S)


def _earlier_runs_settled(pipeline: PipelineClient, deadline: float) -> bool:
    """For a run that repeated events: wait until the earlier batches that stored them are rolled up
    too (a re-run after an outage), so the usage read next includes them; False past ``deadline``."""
    last_nudge = time.monotonic()
    stored = pipeline.stored_so_far()
    while pipeline.waiting_for_rollup(stored) > 0:
        if time.monotonic() > deadline:
            return False
        if time.monotonic() - last_nudge > 5:
            pipeline.nudge_rollup()
            last_nudge = time.monotonic()
        time.sleep(1.0)
    return True


def report(progress: service.IngestProgress, run: IngestRun) -> str:
    """Human summary: counts, then rejection reasons grouped, most frequent first."""
    lines = [
        f"events read: {run.events} in {run.batches} batches",
        f"accepted:    {progress.accepted}",
        f"duplicates:  {progress.duplicates}",
        f"rejected:    {progress.rejected}",
    ]
    for reason, count in progress.rejection_reasons:
        lines.append(f"  {count:>8}  {reason}")
    return "\n".join(lines)
