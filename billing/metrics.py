"""``/metrics``: the pipeline's health in Prometheus text format, read from the database at scrape time.

Counters come from the ingest batch table, so every admin process reports the same totals and
a restart loses nothing. The lag is how long the oldest batch whose connection events still wait to
be folded into their sessions has waited since it was ingested.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from metering.health import PipelineFigures


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
