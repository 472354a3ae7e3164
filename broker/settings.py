"""Broker settings: the shared settings plus ``FANMETER_BROKER_*`` and Redis (read once at start-up)."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from broker.exceptions import ConfigError
from kernel.network_policy import IPNetwork, parse_allowed_networks
from kernel.settings import BackendNetworkSettings, FanmeterSettings

# Values that look like documentation, not a secret: refused as FANMETER_GRIP_SECRET.
PLACEHOLDER_SECRETS = frozenset({"changeme", "change-me", "change_me", "secret", "placeholder", "example", "test"})
MIN_GRIP_SECRET_CHARS = 16


class BrokerSettings(FanmeterSettings, BackendNetworkSettings):
    # Services from the database have their origin's addresses judged by kernel/network_policy.py
    # at every connection, with BackendNetworkSettings' allowed networks.
    # With Redis, a publish to any node reaches clients on every node (Redis pub/sub).
    redis_url: str | None = None
    # The services file (TOML or JSON, see broker/services/file.py); `fanmeter broker --config` overrides it.
    # Unset: the services come from the admin service's tables in FANMETER_DATABASE_URL.
    broker_config: Path | None = None
    # With services from the database: how often they are read again (Fanout off or a revoked
    # token takes effect within this), and the secret each service's GRIP key is derived from.
    broker_reload_seconds: float = Field(default=5.0, gt=0)
    grip_secret: SecretStr | None = None
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
    # The outbox's cap: with this many events not acknowledged by the pipeline, new held connections
    # and publishes are refused with 503 until it drains (broker/usage/admission.py; docs/decisions.md,
    # "Outbox cap and refusals"). A million events is about 400 MB of SQLite file.
    broker_outbox_max_events: int = Field(default=1_000_000, gt=0)
    # Delivery counts are summed per published item and written this often.
    broker_delivery_flush_ms: int = Field(default=200, gt=0)
    # Pushpin's message_wait: how long an item whose prev-id is not the last id seen waits for the
    # item it follows before it is sent anyway; and its id_cache_ttl: an item id seen again on the
    # same channel within this many seconds is a duplicate and dropped (0: no duplicate check).
    broker_message_wait_ms: int = Field(default=5000, ge=0)
    broker_id_cache_ttl_seconds: float = Field(default=60.0, ge=0)
    # What a client may send (docs/security.md): a request's head (request line and headers) and
    # its number of headers (431 beyond), the time its head and its body may take to arrive (408),
    # and a WebSocket message (closed with 1009 beyond, in line with the publish API's 1 MB).
    broker_max_header_bytes: int = Field(default=32 * 1024, ge=1024)
    broker_max_headers: int = Field(default=100, ge=8)
    broker_header_timeout_seconds: float = Field(default=10.0, gt=0)
    broker_body_timeout_seconds: float = Field(default=30.0, gt=0)
    broker_max_ws_message_bytes: int = Field(default=1_000_000, ge=1024)
    # What one party may take of this node (docs/security.md, "Limits"): publishes per publish token
    # (a token bucket per token id: this many a second sustained, bursts of broker_publish_burst;
    # 429 with Retry-After beyond; 0: no limit); connections held per service (503 beyond; 0: no
    # limit), with per-service exceptions as JSON ({"svc_big": 200000}); connections per client
    # address, an IPv6 client's /64 (429 beyond; 0: no limit), except from the networks named
    # (comma-separated CIDRs: a proxy in front, loopback).
    broker_publish_rate_per_second: float = Field(default=500.0, ge=0)
    broker_publish_burst: int = Field(default=1000, ge=1)
    broker_max_held_per_service: int = Field(default=50_000, ge=0)
    broker_max_held_overrides: dict[str, int] = Field(default_factory=dict)
    broker_max_connections_per_address: int = Field(default=1000, ge=0)
    broker_connection_limit_exempt: str = "127.0.0.0/8,::1/128"

    @field_validator("broker_connection_limit_exempt")
    @classmethod
    def _valid_exempt_networks(cls, value: str) -> str:
        parse_allowed_networks(value)  # a bad CIDR stops the broker at start-up, with its name
        return value

    @property
    def connection_limit_exempt(self) -> tuple[IPNetwork, ...]:
        return parse_allowed_networks(self.broker_connection_limit_exempt)

    # The metrics listener (GET /metrics, Prometheus text format): a port of its own, as Pushpin's
    # prometheus_port, never the client port (operators' figures are not for the internet). Unset: none.
    broker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    broker_metrics_host: str = "127.0.0.1"

    def required_grip_secret(self) -> str:
        """``FANMETER_GRIP_SECRET``, refused when unset, short, or a placeholder."""
        secret = self.grip_secret.get_secret_value() if self.grip_secret else ""
        if not secret:
            raise ConfigError("FANMETER_GRIP_SECRET is not set: services from the database need it for GRIP keys")
        if secret.strip().lower() in PLACEHOLDER_SECRETS or len(secret) < MIN_GRIP_SECRET_CHARS:
            raise ConfigError(
                f"FANMETER_GRIP_SECRET looks like a placeholder: use at least {MIN_GRIP_SECRET_CHARS} random characters"
            )
        return secret

    @property
    def outbox_path(self) -> Path:
        return self.data_dir.resolve() / f"broker-outbox-{self.broker_node}.sqlite"
