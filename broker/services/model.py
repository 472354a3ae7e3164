"""The broker's services as values: what it needs to serve one (``ServiceConfig``) and the set of them.

Both sources build these: a services file (``broker.services.file``) and the admin service's
database (``broker.services.database`` reads the rows, ``broker.services.rows`` maps them).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    service_id: str
    account_id: str
    origin: str
    publish_tokens: tuple[str, ...]
    grip_key: str
    fanout_enabled: bool
    hosts: tuple[str, ...] = ()
    # Hex SHA-256 of publish tokens, as the admin service stores them (the database source).
    publish_token_hashes: tuple[str, ...] = ()
    # The admin service's id of each token in ``publish_token_hashes``, in the same order: per-token
    # rate limits are keyed on it, never on the secret (docs/decisions.md, "Limits").
    publish_token_ids: tuple[str, ...] = ()
    # The Host (and TLS server name) the origin is asked for, when not the origin URL's host.
    origin_host: str | None = None
    # The origin's addresses are judged by kernel/network_policy.py at every connection (after the
    # broker's own resolution): services an account configured (the database). A services file is
    # the operator's own and is not judged (docs/decisions.md, "Broker security").
    guarded: bool = False
    # Pushpin's auto_cross_origin: CORS headers on every HTTP answer (broker/transports/cors.py).
    cross_origin: bool = False


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    services: dict[str, ServiceConfig]

    def by_host(self, host: str) -> ServiceConfig | None:
        """The service whose ``hosts`` list names ``host`` (port ignored, case-insensitive)."""
        name = host.rsplit(":", 1)[0].lower() if not host.startswith("[") else host
        for service in self.services.values():
            if name in service.hosts:
                return service
        return None
