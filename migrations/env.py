"""Alembic environment: URL from fanmeter's settings unless the caller set one."""

from __future__ import annotations

from alembic import context

import billing.alerts.orm  # noqa: F401  (usage thresholds, their crossings, the checker's memory)
import billing.console.orm  # noqa: F401  (the console's sign-in table)
import billing.orm  # noqa: F401  (registers the admin service's tables on the shared metadata)
import billing.webhooks.orm  # noqa: F401  (webhook endpoints, outbox, deliveries)
import metering.orm  # noqa: F401  (registers every table on the shared metadata)
from kernel.db import make_engine, metadata
from metering.settings import MeteringSettings

config = context.config
url = config.get_main_option("sqlalchemy.url") or MeteringSettings().resolved_database_url


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            compare_type=True,
            render_as_batch=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
