"""The pipeline's health figures, read from its tables at the moment they are asked for.

The admin service's ``/metrics`` renders them; counters come from the ingest batch table, so every
process reports the same totals and a restart loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, text

from kernel.db import read_only
from kernel.instants import to_micros


@dataclass(frozen=True)
class PipelineFigures:
    accepted: int
    duplicates: int
    rejected: int
    batches: int
    pending_rollup_batches: int
    lag_seconds: float
    open_connections: int


def read_figures(engine: Engine, now: datetime, open_window_us: int) -> PipelineFigures:
    """Read the figures; a connection counts as open when not closed and seen within the window."""
    now_us = to_micros(now)
    with read_only(engine).connect() as conn:
        accepted, duplicates, rejected, batches = conn.execute(
            text(
                "SELECT coalesce(sum(accepted), 0), coalesce(sum(duplicates), 0), coalesce(sum(rejected), 0), "
                "count(*) FROM ingest_batch"
            )
        ).one()
        # A pending batch row is written with its ingest_batch row, so the join always finds it.
        pending, waiting_since = conn.execute(
            text(
                "SELECT count(*), min(b.ingested_at) FROM pending_batch p "
                "JOIN ingest_batch b ON b.batch_id = p.batch_id"
            )
        ).one()
        open_connections = conn.execute(
            text("SELECT count(*) FROM connection_session WHERE closed = :no AND last_seen_us >= :since"),
            {"no": False, "since": now_us - open_window_us},
        ).scalar()
    lag_us = max(0, now_us - int(waiting_since)) if waiting_since is not None else 0
    return PipelineFigures(
        int(accepted),
        int(duplicates),
        int(rejected),
        int(batches),
        int(pending),
        lag_us / 1e6,
        int(open_connections or 0),
    )
