"""The admin process's composition root: metering's runtime plus the admin settings and app."""

from __future__ import annotations

from fastapi import FastAPI

from billing.api.app import create_app
from billing.settings import BillingSettings
from metering.bootstrap import bootstrap as metering_bootstrap
from metering.celery_app import configure


def bootstrap_app(settings: BillingSettings | None = None) -> FastAPI:
    """Build the admin app on this process's engine."""
    runtime = metering_bootstrap()
    configure(runtime.settings)  # POST /v1/events sends batches to the pipeline's queue
    return create_app(runtime.engine, settings or BillingSettings())
