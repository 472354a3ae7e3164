"""Typed settings of the admin service, read from ``FANMETER_*`` once at start-up."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from billing.domain.numbering import Numbering
from kernel.settings import BackendNetworkSettings


class BillingSettings(BackendNetworkSettings):
    model_config = SettingsConfigDict(env_prefix="FANMETER_", extra="ignore")

    admin_host: str = "127.0.0.1"
    admin_port: int = Field(default=8480, gt=0, lt=65536)
    # Drafts are built this long after a month closes, so late events land in the draft.
    statement_grace_hours: int = Field(default=72, ge=0)
    # How long the configuration-time TLS check of a backend waits for the origin.
    tls_check_timeout_seconds: float = Field(default=3.0, gt=0)
    # The CA bundle backends' certificates must chain to; None is certifi's public bundle.
    tls_ca_file: str | None = None
    # Request bodies over this many bytes are refused with 413 before authentication or parsing,
    # by declared Content-Length and while streaming; POST /v1/events has a limit of its own.
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    max_events_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    # POST /v1/events per ingest token (a token bucket per token id, per server process): this many
    # requests a second sustained, bursts of events_rate_burst; beyond, 429 with Retry-After. 0: no limit.
    events_rate_per_second: float = Field(default=100.0, ge=0)
    events_rate_burst: int = Field(default=500, ge=1)
    # How long a request's head and its body may take to arrive (408, and the connection closed),
    # and the head's size and number of headers (431 beyond): kernel.http_limits, as on the broker.
    admin_header_timeout_seconds: float = Field(default=10.0, gt=0)
    admin_body_timeout_seconds: float = Field(default=30.0, gt=0)
    admin_max_header_bytes: int = Field(default=32 * 1024, ge=1024)
    admin_max_headers: int = Field(default=100, ge=8)
    # Numbers of finalized statements and credit notes (billing.domain.numbering): FM-2026-000123,
    # CN-2026-000007; with the yearly reset off, one sequence for ever (FM-000123).
    statement_number_prefix: str = "FM"
    credit_note_number_prefix: str = "CN"
    number_yearly_reset: bool = True

    @model_validator(mode="after")
    def _valid_numbering(self) -> BillingSettings:
        self.numbering  # noqa: B018  (a bad prefix stops the service at start-up, with the reason)
        return self

    @property
    def numbering(self) -> Numbering:
        return Numbering(self.statement_number_prefix, self.credit_note_number_prefix, self.number_yearly_reset)
