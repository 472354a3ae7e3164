"""The services a broker serves, read from the admin service's tables in the shared database.

The broker imports nothing from ``billing/``: it reads the columns it needs with SQLAlchemy Core
over lightweight table constructs (never on the shared ``MetaData``), only for Compute services,
and only unrevoked publish tokens; ``broker.services.rows`` turns the rows into services.
"""

from __future__ import annotations

import logging

from sqlalchemy import JSON, Boolean, Engine, String, column, select, table

from broker.services.model import BrokerConfig
from broker.services.rows import BackendRow, ServiceRow, service_configs

logger = logging.getLogger(__name__)

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
