"""The one client of the metering pipeline: every producer of events sends through it.

The broker's shipper, the Pushpin adapter, ``POST /v1/events`` and ``fanmeter ingest`` submit
batches of CloudEvent texts under ids they choose deterministically (``batch_id``), ask which
batches the pipeline has recorded, and read how far a run of batches has got. None of them
sends a Celery task or reads the pipeline's tables itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Engine

from kernel.db import make_engine
from kernel.settings import FanmeterSettings
from metering import service
from metering.celery_app import configure, declare_queue
from metering.service import IngestProgress
from metering.tasks import ingest_batch, rollup

# The pipeline's batch ids are at most this long (the ingest_batch table's key).
MAX_BATCH_ID_CHARS = 64


def batch_id(run_id: str, index: int) -> str:
    """The id of message ``index`` of a run: ``run_id`` then the index, so a run's ids share a prefix.

    Example: ``batch_id("api-1f2e", 3)`` is ``"api-1f2e-000003"``; ``progress("api-1f2e-")`` finds it.
    """
    return f"{run_id}-{index:06d}"


class PipelineClient:
    """Submits batches to the pipeline's ingest task and reads what the pipeline has recorded."""

    def __init__(self, engine: Engine, settings: FanmeterSettings | None = None) -> None:
        """Send to where ``settings`` say; without them, to where this process's Celery app already points."""
        if settings is not None:
            configure(settings)
        self._engine = engine
        self._declared = False

    @classmethod
    def from_settings(cls, settings: FanmeterSettings) -> PipelineClient:
        """A client with an engine of its own (for processes with no metering database engine yet)."""
        return cls(make_engine(settings.resolved_database_url), settings)

    def submit(self, batch_id: str, payloads: Sequence[str]) -> None:
        """Send one batch; sending the same id again is safe (the pipeline records a batch once)."""
        if len(batch_id) > MAX_BATCH_ID_CHARS:
            raise ValueError(f"batch id {batch_id!r} is longer than {MAX_BATCH_ID_CHARS} characters")
        if not self._declared:  # the queue rows of the embedded transport, created once
            declare_queue()
            self._declared = True
        ingest_batch.apply_async(args=(batch_id, list(payloads)))

    def submit_run(self, run_id: str, batches: Iterable[Sequence[str]]) -> int:
        """Send batches as one run (ids from ``batch_id``); return how many were sent."""
        sent = 0
        for payloads in batches:
            self.submit(batch_id(run_id, sent), payloads)
            sent += 1
        return sent

    def recorded(self, batch_ids: list[str]) -> set[str]:
        """The ids among ``batch_ids`` that the pipeline has ingested."""
        return service.recorded_batches(self._engine, batch_ids)

    def progress(self, run_id: str) -> IngestProgress:
        """How far the batches of the run ``run_id`` have got (ingested, rolled up, rejected)."""
        return service.ingest_progress(self._engine, run_id + "-")

    def nudge_rollup(self) -> None:
        """Ask for a rollup pass now (a lost trigger must never leave a caller waiting)."""
        rollup.delay()
