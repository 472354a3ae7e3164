"""Request and response bodies of products, services, backends and per-service Fanout."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from billing.api.schemas import Strict
from kernel.network_policy import host_refusal

ProductId = Literal["compute", "fanout"]
ServiceType = Literal["compute", "delivery"]
TlsStatus = Literal["verified", "unverified", "untrusted", "not_applicable"]
NAME = r"^[A-Za-z0-9][A-Za-z0-9 ._:-]*$"


class ObjectRef(BaseModel):
    """A reference in Fastly's enabled-products shape: ``{"id": …, "object": "service"}``."""

    id: str
    object: str


class ProductOut(BaseModel):
    """A product of an account: purchased (``enabled``) or not."""

    product: ObjectRef
    account: ObjectRef
    enabled: bool
    enabled_at: datetime | None


class ServiceIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    type: ServiceType
    directors: bool = False
    shielding: bool = False
    ngwaf: bool = Field(default=False, description="The Next-Gen WAF.")
    cross_origin: bool = Field(
        default=False,
        description=(
            "Automatic CORS for the service's clients, as Pushpin's auto_cross_origin: the broker adds "
            "Access-Control-* headers to every HTTP answer, so a page on another origin can hold an SSE "
            "stream or a long-poll."
        ),
    )


class ServicePatch(Strict):
    """Only the fields given change; ``type`` cannot change."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    directors: bool | None = None
    shielding: bool | None = None
    ngwaf: bool | None = None
    cross_origin: bool | None = Field(default=None, description="Automatic CORS (see ServiceIn).")


class ServiceOut(BaseModel):
    id: str
    account_id: str
    name: str
    type: ServiceType
    fanout_enabled: bool
    directors: bool
    shielding: bool
    ngwaf: bool
    cross_origin: bool


FANOUT_FIELDS = ("name", "address", "use_tls", "override_host")


class BackendIn(Strict):
    """A backend (origin). Fanout services accept only name, address (with port), use_tls and override_host;
    the other Fastly backend settings are accepted for other services and kept as given."""

    name: str = Field(min_length=1, max_length=200, pattern=NAME)
    address: str = Field(min_length=1, max_length=255, description="Hostname or IP address of the origin.")
    port: int | None = Field(default=None, ge=1, le=65535, description="Default: 443 with TLS, 80 without.")
    use_tls: bool = Field(default=False, description="Enable TLS (Fastly's `use_ssl`).")
    override_host: str | None = Field(default=None, min_length=1, max_length=255)
    # Fastly backend settings beyond the four; refused, by name, on a Fanout service.
    comment: str | None = Field(default=None, max_length=1000)
    connect_timeout: int | None = Field(default=None, ge=0)
    first_byte_timeout: int | None = Field(default=None, ge=0)
    between_bytes_timeout: int | None = Field(default=None, ge=0)
    max_conn: int | None = Field(default=None, ge=0)
    weight: int | None = Field(default=None, ge=0, le=100)
    auto_loadbalance: bool | None = None
    keepalive_time: int | None = Field(default=None, ge=0)
    error_threshold: int | None = Field(default=None, ge=0)
    healthcheck: str | None = Field(default=None, max_length=255)
    request_condition: str | None = Field(default=None, max_length=255)
    shield: str | None = Field(default=None, max_length=255)
    ssl_cert_hostname: str | None = Field(default=None, max_length=255)
    ssl_sni_hostname: str | None = Field(default=None, max_length=255)
    ssl_check_cert: bool | None = None
    ssl_ca_cert: str | None = Field(default=None, max_length=20000)
    ssl_ciphers: str | None = Field(default=None, max_length=1000)
    min_tls_version: str | None = Field(default=None, max_length=10)
    max_tls_version: str | None = Field(default=None, max_length=10)

    @field_validator("address")
    @classmethod
    def _address_is_a_host(cls, value: str) -> str:
        reason = host_refusal(value)
        if reason:
            raise ValueError(f"address: {reason}")
        return value

    @field_validator("override_host", "ssl_cert_hostname", "ssl_sni_hostname")
    @classmethod
    def _names_are_hosts(cls, value: str | None) -> str | None:
        """Sent as a Host header and a TLS name: a host name or IP, optionally with a port, nothing else."""
        if value is None:
            return None
        host, port = _split_port(value)
        reason = host_refusal(host) or (
            None if port is None or (port.isdigit() and 1 <= int(port) <= 65535) else "the port must be 1-65535"
        )
        if reason:
            raise ValueError(reason)
        return value

    def fanout_fields(self) -> dict[str, Any]:
        """The four settings every service supports."""
        return {field: getattr(self, field) for field in FANOUT_FIELDS}

    def other_settings(self) -> dict[str, Any]:
        """Every other setting given (a null counts as not given), ``port`` included."""
        return {
            key: value
            for key, value in self.model_dump(exclude_none=True).items()
            if key not in FANOUT_FIELDS and key in self.model_fields_set
        }


def _split_port(value: str) -> tuple[str, str | None]:
    """``host:port`` (``[v6]:port``) into its parts; a bare IPv6 literal has no port."""
    if value.startswith("[") and "]:" in value:
        host, _, port = value.rpartition(":")
        return host, port
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return host, port
    return value, None


class BackendOut(BaseModel):
    id: str
    service_id: str
    name: str
    address: str
    port: int
    use_tls: bool
    override_host: str | None
    settings: dict[str, Any]
    tls_status: TlsStatus


class FanoutLinks(BaseModel):
    self: str


class FanoutEnablementOut(BaseModel):
    """Fastly's enabled-products shape for Fanout on one service."""

    product: ObjectRef
    service: ObjectRef
    links: FanoutLinks = Field(serialization_alias="_links")


class FanoutServicesOut(BaseModel):
    """Fastly's shape for the services of a customer with Fanout on."""

    product: ObjectRef
    customer: ObjectRef
    services: list[str]
    links: FanoutLinks = Field(serialization_alias="_links")
