"""``/metrics``: the pipeline's health in Prometheus text format, read from the database at scrape time.

Counters come from the ingest batch table, so every admin process reports the same totals and
a restart loses nothing. The lag is how long the oldest batch whose connection events still wait to
be folded into their sessions has waited since it was ingested.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, text

from metering.db import read_only
from metering.domain.instants import to_micros


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


class _Figures(Collector):
    def __init__(self, figures: PipelineFigures) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        f = self.figures
        events = CounterMetricFamily("fanmeter_events", "Events ingested, by outcome.", labels=["outcome"])
        events.add_metric(["accepted"], f.accepted)
        events.add_metric(["duplicate"], f.duplicates)
        events.add_metric(["rejected"], f.rejected)
        yield events
        yield CounterMetricFamily("fanmeter_ingest_batches", "Batches ingested.", value=f.batches)
        yield GaugeMetricFamily(
            "fanmeter_pending_rollup_batches",
            "Ingested batches whose connection events wait to be folded.",
            f.pending_rollup_batches,
        )
        yield GaugeMetricFamily(
            "fanmeter_pipeline_lag_seconds", "How long the oldest unfolded event has waited.", f.lag_seconds
        )
        yield GaugeMetricFamily(
            "fanmeter_open_connections", "Connections not closed and seen within 3 alive intervals.", f.open_connections
        )


def render(figures: PipelineFigures) -> bytes:
    """The figures in Prometheus text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Figures(figures))
    return generate_latest(registry)
