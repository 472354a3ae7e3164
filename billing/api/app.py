"""The admin service's ASGI app: routers, error mapping, and its state (sessions, clock, settings)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from billing import console
from billing.api import api_docs, errors
from billing.api.routers import (
    accounts,
    alerts,
    audit,
    credit_notes,
    events,
    fanout,
    health,
    operations,
    products,
    rate_cards,
    services,
    statements,
    usage,
    webhooks,
)
from billing.settings import BillingSettings
from kernel.db import read_only
from metering.client import PipelineClient
from metering.settings import MeteringSettings

DESCRIPTION = """\
The fanmeter admin service: accounts and their people, products and services, rate cards,
usage and statements. Every request but `/healthz` and `/metrics` carries
`Authorization: Bearer <token>`; what each role may do is DESIGN.md's role table, and
another account's resources answer 404.
"""


# POST /v1/events holds its request at most this long through a pipeline outage, then answers 503
# with Retry-After: a producer retries sooner than a connection would wait out the usual 120 s.
EVENTS_OUTAGE_WAIT_S = 5.0


def system_clock() -> datetime:
    return datetime.now(UTC)


def create_app(
    engine: Engine,
    settings: BillingSettings | None = None,
    clock: Callable[[], datetime] = system_clock,
    pipeline: PipelineClient | None = None,
) -> FastAPI:
    """Build the admin API over ``engine``; tests pass their own clock to drive time.

    ``pipeline`` is where ``POST /v1/events`` sends; by default, where this process's Celery app points.
    """
    app = FastAPI(
        title="fanmeter admin",
        version="1",
        description=DESCRIPTION,
        responses=errors.ERROR_RESPONSES,
        docs_url=None,  # /docs and /redoc come from api_docs, with their assets served here
        redoc_url=None,
    )
    app.state.sessions = sessionmaker(engine, expire_on_commit=False)
    app.state.settings = settings or BillingSettings()
    app.state.clock = clock
    app.state.engine = engine
    app.state.read_engine = read_only(engine)  # built once: every GET binds its session to it
    metering_settings = MeteringSettings()
    app.state.ingest_batch_size = metering_settings.ingest_batch_size
    app.state.pipeline = pipeline or PipelineClient(engine, wait_s=EVENTS_OUTAGE_WAIT_S)
    # A connection is counted open while not closed and seen within the lost-close window.
    app.state.open_window_us = metering_settings.lost_close_factor * metering_settings.alive_interval_us
    errors.install(app)
    api_docs.install(app)
    # The usage router first: routes are matched in order, and usage is the busiest read.
    routers = [usage, health, operations, accounts, products, services, fanout, events, rate_cards, statements]
    routers += [credit_notes, alerts, audit, webhooks]
    for router in (module.router for module in routers):
        app.include_router(router)
    console.install(app)  # the people's pages, on the same services and role table
    return app
