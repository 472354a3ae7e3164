"""The admin service's ASGI app: routers, error mapping, and its state (sessions, clock, settings)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from billing.api import errors
from billing.api.routers import accounts, audit, health, rate_cards, statements
from billing.settings import BillingSettings

DESCRIPTION = """\
The fanmeter admin service: accounts and their people, products and services, rate cards,
usage and statements. Every request but `/healthz` and `/metrics` carries
`Authorization: Bearer <token>`; what each role may do is DESIGN.md's role table, and
another account's resources answer 404.
"""


def system_clock() -> datetime:
    return datetime.now(UTC)


def create_app(
    engine: Engine, settings: BillingSettings | None = None, clock: Callable[[], datetime] = system_clock
) -> FastAPI:
    """Build the admin API over ``engine``; tests pass their own clock to drive time."""
    app = FastAPI(title="fanmeter admin", version="1", description=DESCRIPTION, responses=errors.ERROR_RESPONSES)
    app.state.sessions = sessionmaker(engine, expire_on_commit=False)
    app.state.settings = settings or BillingSettings()
    app.state.clock = clock
    app.state.engine = engine
    errors.install(app)
    for router in (health.router, accounts.router, rate_cards.router, statements.router, audit.router):
        app.include_router(router)
    return app
