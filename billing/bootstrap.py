"""The admin process's composition root: metering's runtime plus the admin settings and app."""

from __future__ import annotations

from fastapi import FastAPI

from billing.api.app import EVENTS_OUTAGE_WAIT_S, create_app
from billing.settings import BillingSettings
from metering.bootstrap import bootstrap as metering_bootstrap
from metering.client import PipelineClient


def bootstrap_app(settings: BillingSettings | None = None) -> FastAPI:
    """Build the admin app on this process's engine."""
    runtime = metering_bootstrap()
    # POST /v1/events sends to the configured queue, waiting out an outage only briefly.
    pipeline = PipelineClient(runtime.engine, runtime.settings, wait_s=EVENTS_OUTAGE_WAIT_S)
    return create_app(runtime.engine, settings or BillingSettings(), pipeline=pipeline)
