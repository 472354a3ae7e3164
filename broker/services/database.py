"""The broker's read model of the admin service's schema: the columns it reads, and the one query.

The admin service (``billing/``) owns the tables ``service``, ``backend`` and ``api_token`` and
their migrations. The broker imports nothing from ``billing/``, so it names here, and only here,
the columns it reads, as lightweight table constructs (never on the shared ``MetaData``), and
reads them with SQLAlchemy Core in ``read_rows``: Compute services, their backends, and their
unrevoked publish tokens. ``tests/integration/test_broker_read_model.py`` checks every column
named here against billing's tables, so a renamed column fails a test rather than a broker.
``broker.services.rows`` turns the rows into services (docs/decisions.md, "Broker").
"""

from __future__ import annotations

import logging

from sqlalchemy import JSON, Boolean, Connection, Engine, String, TableClause, column, select, table

from broker.services.model import BrokerConfig
from broker.services.rows import AdminRows, BackendRow, ServiceRow, TokenRow, service_configs
from kernel.db import UtcDateTime

logger = logging.getLogger(__name__)

SERVICE = table(
    "service", column("id", String), column("account_id", String), column("type", String),
    column("fanout_enabled", Boolean), column("cross_origin", Boolean),
)  # fmt: skip
BACKEND = table(
    "backend", column("service_id", String), column("name", String), column("address", String),
    column("use_tls", Boolean), column("override_host", String), column("settings", JSON),
    column("tls_status", String),
)  # fmt: skip
API_TOKEN = table(
    "api_token", column("id", String), column("service_id", String), column("kind", String),
    column("token_hash", String), column("revoked_at", UtcDateTime),
)  # fmt: skip
READ_MODEL: tuple[TableClause, ...] = (SERVICE, BACKEND, API_TOKEN)


def read_rows(conn: Connection) -> AdminRows:
    """Read the rows the broker's services are made of: Compute services, their backends, live publish tokens."""
    compute = select(SERVICE.c.id).where(SERVICE.c.type == "compute")
    services = [
        ServiceRow(r.id, r.account_id, bool(r.fanout_enabled), bool(r.cross_origin))
        for r in conn.execute(
            select(SERVICE.c.id, SERVICE.c.account_id, SERVICE.c.fanout_enabled, SERVICE.c.cross_origin).where(
                SERVICE.c.type == "compute"
            )
        )
    ]
    backends = [
        BackendRow(r.service_id, r.name, r.address, bool(r.use_tls), r.override_host, r.settings or {}, r.tls_status)
        for r in conn.execute(select(BACKEND).where(BACKEND.c.service_id.in_(compute)))
    ]
    tokens = [
        TokenRow(r.service_id, r.token_hash, r.id)
        for r in conn.execute(
            select(API_TOKEN.c.service_id, API_TOKEN.c.token_hash, API_TOKEN.c.id).where(
                API_TOKEN.c.kind == "publish", API_TOKEN.c.revoked_at.is_(None), API_TOKEN.c.service_id.in_(compute)
            )
        )
    ]
    return AdminRows(services, backends, tokens)


class DatabaseServices:
    """Loads the broker's services from the shared database; each new problem is logged once."""

    def __init__(self, engine: Engine, secret: str) -> None:
        self._engine = engine
        self._secret = secret
        self._problems: set[str] = set()

    def __call__(self) -> BrokerConfig:
        """Read the services now (raises the database's error; the caller keeps its last good config)."""
        with self._engine.connect() as conn:
            rows = read_rows(conn)
        config, problems = service_configs(rows.services, rows.backends, rows.tokens, self._secret)
        for problem in sorted(set(problems) - self._problems):
            logger.warning("%s", problem)
        self._problems = set(problems)
        return config
