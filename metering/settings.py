"""Typed settings, read from ``FANMETER_*`` environment variables once at start-up.

Everything is optional: with nothing set, fanmeter runs on the embedded default, a
SQLite database and Celery over kombu's SQLAlchemy transport on SQLite, under
``FANMETER_DATA_DIR`` (``./var``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class MeteringSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FANMETER_", extra="ignore")

    data_dir: Path = Path("var")
    database_url: str | None = None
    celery_broker_url: str | None = None
    redis_url: str | None = None
    # The Celery queue the pipeline's tasks travel on (tests use one of their own).
    celery_queue: str = "fanmeter"
    # Broker nodes send an alive event per open connection at least this often.
    alive_interval_seconds: int = Field(default=60, gt=0)
    # A connection silent for this many alive intervals is closed at its last-seen time.
    lost_close_factor: int = Field(default=3, gt=0)
    # Events per Celery message sent by `fanmeter ingest`.
    ingest_batch_size: int = Field(default=5000, gt=0, le=100_000)
    # Connection events folded into sessions per rollup transaction.
    rollup_pass_size: int = Field(default=50_000, gt=0)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'fanmeter.db'}"

    @property
    def resolved_celery_broker_url(self) -> str:
        return self.celery_broker_url or f"sqla+sqlite:///{self.data_dir.resolve() / 'celery.db'}"

    @property
    def alive_interval_us(self) -> int:
        return self.alive_interval_seconds * 1_000_000

    def ensure_data_dir(self) -> None:
        """Create the data directory the embedded default writes its SQLite files to."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
