"""Broker settings: the metering settings plus ``FANMETER_BROKER_*`` (read once at start-up)."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import Field

from metering.settings import MeteringSettings


class BrokerSettings(MeteringSettings):
    # The services file (TOML or JSON, see broker/config.py); `fanmeter broker --config` overrides it.
    broker_config: Path | None = None
    # This node's name: events carry source "broker/<node>" and the outbox file is named after it,
    # so it must stay the same across restarts for a node to resume shipping its own outbox.
    broker_node: str = Field(default_factory=socket.gethostname, min_length=1, max_length=40)
    # Deliveries waiting per connection; beyond this a slow consumer's deliveries are dropped.
    broker_queue_size: int = Field(default=1000, gt=0)
    # Ship the outbox to the pipeline (off only for benchmarks: events then stay in the outbox).
    broker_ship: bool = True
    # Events per batch sent to the metering pipeline, and how often the shipper looks.
    broker_ship_batch: int = Field(default=2000, gt=0, le=100_000)
    broker_ship_interval_ms: int = Field(default=250, gt=0)
    # A batch not recorded by the pipeline this long after sending is sent again (dedup makes it safe).
    broker_resend_seconds: float = Field(default=15.0, gt=0)
    # Delivery counts are summed per published item and written this often.
    broker_delivery_flush_ms: int = Field(default=200, gt=0)

    @property
    def outbox_path(self) -> Path:
        return self.data_dir.resolve() / f"broker-outbox-{self.broker_node}.sqlite"
