"""Typed settings of the admin service, read from ``FANMETER_*`` once at start-up."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class BillingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FANMETER_", extra="ignore")

    admin_host: str = "127.0.0.1"
    admin_port: int = Field(default=8480, gt=0, lt=65536)
    # Drafts are built this long after a month closes, so late events land in the draft.
    statement_grace_hours: int = Field(default=72, ge=0)
    # How long the configuration-time TLS check of a backend waits for the origin.
    tls_check_timeout_seconds: float = Field(default=3.0, gt=0)
    # The CA bundle backends' certificates must chain to; None is certifi's public bundle.
    tls_ca_file: str | None = None
