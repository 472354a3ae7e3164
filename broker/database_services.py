"""The services a broker serves, read from the admin service's tables in the shared database.

The broker imports nothing from ``billing/``: it reads the four columns it needs with SQLAlchemy
Core over lightweight table constructs, and maps the rows to ``ServiceConfig`` values with pure
functions. Served: Compute services with Fanout on, proxied to their first backend by name.
Compute services with Fanout off are known but refused (403), Delivery services are unknown.
A publish token is the service's when an unrevoked ``publish`` token row of that service holds its
SHA-256; the GRIP key is derived per service from the broker-wide ``FANMETER_GRIP_SECRET``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Boolean, Engine, String, column, select, table

from broker.config import BrokerConfig, ServiceConfig

logger = logging.getLogger(__name__)

UNTRUSTED = "untrusted"  # backend.tls_status of a certificate that failed verification

_service = table(
    "service", column("id", String), column("account_id", String), column("type", String),
    column("fanout_enabled", Boolean),
)  # fmt: skip
_backend = table(
    "backend", column("service_id", String), column("name", String), column("address", String),
    column("use_tls", Boolean), column("override_host", String), column("settings", JSON),
    column("tls_status", String),
)  # fmt: skip
_token = table(
    "api_token", column("service_id", String), column("kind", String), column("token_hash", String),
    column("revoked_at"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ServiceRow:
    id: str
    account_id: str
    fanout_enabled: bool


@dataclass(frozen=True, slots=True)
class BackendRow:
    service_id: str
    name: str
    address: str
    use_tls: bool
    override_host: str | None
    settings: Mapping[str, Any]
    tls_status: str


def grip_key(secret: str, service_id: str) -> str:
    """The service's GRIP signing key: hex HMAC-SHA256 of its id under the broker-wide secret.

    Example: ``grip_key("s" * 32, "svc_1")`` is a 64-character hex string the origin uses, as text,
    to validate ``Grip-Sig`` (``fanmeter grip-key svc_1`` prints it).
    """
    return hmac.new(secret.encode(), service_id.encode(), hashlib.sha256).hexdigest()


def origin_url(backend: BackendRow) -> str:
    """The backend as an origin URL: https with TLS, its ``port`` setting or 443/80.

    Example: address ``origin.example``, TLS off, no port → ``http://origin.example:80``.
    """
    port = backend.settings.get("port")
    if not isinstance(port, int) or isinstance(port, bool):
        port = 443 if backend.use_tls else 80
    host = f"[{backend.address}]" if ":" in backend.address else backend.address
    return f"{'https' if backend.use_tls else 'http'}://{host}:{port}"


def service_configs(
    services: Iterable[ServiceRow], backends: Iterable[BackendRow], token_hashes: Iterable[tuple[str, str]], secret: str
) -> tuple[BrokerConfig, list[str]]:
    """The broker's services from the admin service's rows, and why any Fanout service is not served.

    ``token_hashes`` holds (service id, hex SHA-256) of unrevoked publish tokens. A Fanout service
    goes to its first backend by name; with no backend, or one whose certificate was found
    untrusted, it is left out and the reason returned.
    """
    first_backend: dict[str, BackendRow] = {}
    for candidate in sorted(backends, key=lambda b: (b.service_id, b.name)):
        first_backend.setdefault(candidate.service_id, candidate)
    hashes: dict[str, list[str]] = {}
    for service_id, digest in token_hashes:
        hashes.setdefault(service_id, []).append(digest)
    configs: dict[str, ServiceConfig] = {}
    problems: list[str] = []
    for row in sorted(services, key=lambda s: s.id):
        backend = first_backend.get(row.id)
        problem = _problem(row, backend)
        if problem:
            problems.append(problem)
            continue
        configs[row.id] = ServiceConfig(
            service_id=row.id,
            account_id=row.account_id,
            origin=origin_url(backend) if backend and row.fanout_enabled else "",
            publish_tokens=(),
            grip_key=grip_key(secret, row.id),
            fanout_enabled=row.fanout_enabled,
            publish_token_hashes=tuple(sorted(hashes.get(row.id, ()))),
            origin_host=(backend.override_host or None) if backend else None,
        )
    return BrokerConfig(configs), problems


def _problem(service: ServiceRow, backend: BackendRow | None) -> str | None:
    if not service.fanout_enabled:
        return None
    if backend is None:
        return f"service {service.id} has Fanout on but no backend: not served"
    if backend.use_tls and backend.tls_status == UNTRUSTED:
        return f"service {service.id}: backend {backend.name!r} has an untrusted TLS certificate: not served"
    return None


class DatabaseServices:
    """Loads the broker's services from the shared database; each new problem is logged once."""

    def __init__(self, engine: Engine, secret: str) -> None:
        self._engine = engine
        self._secret = secret
        self._problems: set[str] = set()

    def __call__(self) -> BrokerConfig:
        """Read the services now (raises the database's error; the caller keeps its last good config)."""
        services, backends, tokens = self._rows()
        config, problems = service_configs(services, backends, tokens, self._secret)
        for problem in sorted(set(problems) - self._problems):
            logger.warning("%s", problem)
        self._problems = set(problems)
        return config

    def _rows(self) -> tuple[list[ServiceRow], list[BackendRow], list[tuple[str, str]]]:
        compute = select(_service.c.id).where(_service.c.type == "compute")
        with self._engine.connect() as conn:
            services = [
                ServiceRow(r.id, r.account_id, bool(r.fanout_enabled))
                for r in conn.execute(
                    select(_service.c.id, _service.c.account_id, _service.c.fanout_enabled).where(
                        _service.c.type == "compute"
                    )
                )
            ]
            backends = [
                BackendRow(
                    r.service_id, r.name, r.address, bool(r.use_tls), r.override_host, r.settings or {}, r.tls_status
                )
                for r in conn.execute(select(_backend).where(_backend.c.service_id.in_(compute)))
            ]
            tokens = [
                (r.service_id, r.token_hash)
                for r in conn.execute(
                    select(_token.c.service_id, _token.c.token_hash).where(
                        _token.c.kind == "publish", _token.c.revoked_at.is_(None), _token.c.service_id.in_(compute)
                    )
                )
            ]
        return services, backends, tokens
