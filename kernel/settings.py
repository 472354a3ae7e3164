"""The settings every fanmeter process shares, read from ``FANMETER_*`` once at start-up.

Everything is optional: with nothing set, fanmeter runs on the embedded default, a SQLite
database and Celery over kombu's SQLAlchemy transport on SQLite, under ``FANMETER_DATA_DIR``
(``./var``). Each package extends this class with its own fields.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kernel.network_policy import IPNetwork, parse_allowed_networks


class FanmeterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FANMETER_", extra="ignore")

    data_dir: Path = Path("var")
    database_url: str | None = None
    # Where the metering pipeline takes its work: every producer of events sends there.
    celery_broker_url: str | None = None
    # The Celery queue the pipeline's tasks travel on (tests use one of their own).
    celery_queue: str = "fanmeter"
    # The event contract's alive interval: broker nodes send an alive event per open connection
    # at least this often, and the pipeline closes a connection silent for a few of them.
    alive_interval_seconds: int = Field(default=60, gt=0)
    # How long a producer waits out an outage of the database or the message broker (a restart,
    # a failover) before it gives up with one line saying what is unreachable.
    wait_for_services_seconds: float = Field(default=120.0, ge=0)

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


class BackendNetworkSettings(BaseSettings):
    """The operator's exceptions to the backend address policy, read alike by the admin service
    (at configuration) and the broker (at every connection to an origin)."""

    model_config = SettingsConfigDict(env_prefix="FANMETER_", extra="ignore")

    # Networks an account's backends may point at although not public (kernel.network_policy refuses
    # loopback, private, link-local, metadata... addresses): comma-separated CIDRs, e.g. "10.20.0.0/16".
    backend_allowed_networks: str = ""

    @field_validator("backend_allowed_networks")
    @classmethod
    def _valid_networks(cls, value: str) -> str:
        parse_allowed_networks(value)  # a bad CIDR stops the process at start-up, with its name
        return value

    @property
    def allowed_networks(self) -> tuple[IPNetwork, ...]:
        return parse_allowed_networks(self.backend_allowed_networks)
