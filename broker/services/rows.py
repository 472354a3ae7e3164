"""Pure mapping from the admin service's rows to the broker's ``ServiceConfig`` values (no I/O).

``broker/services/database.py`` reads the rows (the broker's read model of the admin service's
schema); the rules of which service is served, with which origin, tokens and GRIP key, live here
(docs/decisions.md, "Broker").
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from broker.services.model import BrokerConfig, ServiceConfig
from kernel.network_policy import host_refusal

UNTRUSTED = "untrusted"  # backend.tls_status of a certificate that failed verification


@dataclass(frozen=True, slots=True)
class ServiceRow:
    id: str
    account_id: str
    fanout_enabled: bool
    cross_origin: bool = False  # automatic CORS (service.cross_origin)


@dataclass(frozen=True, slots=True)
class BackendRow:
    service_id: str
    name: str
    address: str
    use_tls: bool
    override_host: str | None
    settings: Mapping[str, Any]
    tls_status: str


@dataclass(frozen=True, slots=True)
class TokenRow:
    """An unrevoked publish token of a service, as the admin service keeps it: its hex SHA-256."""

    service_id: str
    token_hash: str
    token_id: str = ""  # the api_token row's id (per-token rate limits are keyed on it)


@dataclass(frozen=True, slots=True)
class AdminRows:
    """Everything one read of the admin service's tables gives: the rows services are made of."""

    services: list[ServiceRow]
    backends: list[BackendRow]
    tokens: list[TokenRow]


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
    address = backend.address.removeprefix("[").removesuffix("]")
    host = f"[{address}]" if ":" in address else address
    return f"{'https' if backend.use_tls else 'http'}://{host}:{port}"


def service_configs(
    services: Iterable[ServiceRow], backends: Iterable[BackendRow], tokens: Iterable[TokenRow], secret: str
) -> tuple[BrokerConfig, list[str]]:
    """The broker's services from the admin service's rows, and why any Fanout service is not served.

    ``tokens`` are the unrevoked publish tokens. A Fanout service goes to its first backend by
    name; with no backend, or one whose certificate was found untrusted, it is left out and the
    reason returned.
    """
    first_backend: dict[str, BackendRow] = {}
    for candidate in sorted(backends, key=lambda b: (b.service_id, b.name)):
        first_backend.setdefault(candidate.service_id, candidate)
    hashes: dict[str, list[tuple[str, str]]] = {}
    for token in tokens:
        hashes.setdefault(token.service_id, []).append((token.token_hash, token.token_id))
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
            publish_token_hashes=tuple(h for h, _ in sorted(hashes.get(row.id, ()))),
            publish_token_ids=tuple(i for _, i in sorted(hashes.get(row.id, ()))),
            origin_host=(backend.override_host or None) if backend else None,
            guarded=True,
            cross_origin=row.cross_origin,
        )
    return BrokerConfig(configs), problems


def _problem(service: ServiceRow, backend: BackendRow | None) -> str | None:
    if not service.fanout_enabled:
        return None
    if backend is None:
        return f"service {service.id} has Fanout on but no backend: not served"
    if backend.use_tls and backend.tls_status == UNTRUSTED:
        return f"service {service.id}: backend {backend.name!r} has an untrusted TLS certificate: not served"
    return _address_problem(service.id, backend)


def _address_problem(service_id: str, backend: BackendRow) -> str | None:
    """Why a backend's address, port or override host is not one (rows written before the admin service
    validated them, or by hand): such a service is not served rather than failing on every request."""
    where = f"service {service_id}: backend {backend.name!r}"
    refusal = host_refusal(backend.address)
    if refusal is not None:
        return f"{where} has an invalid address ({refusal}): not served"
    port = backend.settings.get("port")
    if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536):
        return f"{where} has an invalid port: not served"
    if backend.override_host and host_refusal(backend.override_host) is not None:
        return f"{where} has an invalid override host ({host_refusal(backend.override_host)}): not served"
    return None
