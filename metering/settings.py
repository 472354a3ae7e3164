"""The metering pipeline's settings: the shared ones plus its policies (read once at start-up)."""

from __future__ import annotations

from pydantic import Field

from kernel.settings import FanmeterSettings


class MeteringSettings(FanmeterSettings):
    # A connection silent for this many alive intervals is closed at its last-seen time.
    lost_close_factor: int = Field(default=3, gt=0)
    # Events per Celery message sent by `fanmeter ingest`.
    ingest_batch_size: int = Field(default=5000, gt=0, le=100_000)
    # Connection events folded into sessions per rollup transaction.
    rollup_pass_size: int = Field(default=50_000, gt=0)
