"""Per-token rate limits of the admin API: ``POST /v1/events`` per ingest token (``kernel.rate_limit``).

Keyed on the token's id, never its secret; one bucket per token in each server process, so with
``fanmeter admin --workers N`` a token may send up to N times the rate (docs/decisions.md, "Limits").
A refused request is answered before its body is read: nothing of it reaches the pipeline.
"""

from __future__ import annotations

import time

from fastapi import HTTPException, Request

from billing.settings import BillingSettings
from kernel.rate_limit import Rate, RateLimiter, retry_after_seconds


def events_limiter(request: Request) -> RateLimiter:
    """The app's limiter for ``POST /v1/events``, built from its settings on the first request."""
    state = request.app.state
    limiter: RateLimiter | None = getattr(state, "events_limiter", None)
    if limiter is None:
        settings: BillingSettings = state.settings
        limiter = state.events_limiter = RateLimiter(Rate(settings.events_rate_per_second, settings.events_rate_burst))
    return limiter


def admit_events(request: Request, token_id: str) -> None:
    """Take one request from the token's bucket, or refuse it: 429, ``Retry-After`` in whole seconds."""
    limiter = events_limiter(request)
    wait = limiter.admit(token_id, time.monotonic_ns())
    if wait:
        retry = retry_after_seconds(wait)
        rate = limiter.rate
        raise HTTPException(
            429,
            f"too many requests with ingest token {token_id}: its limit is {rate.per_second:g} per second "
            f"(bursts of {rate.burst}); nothing of this request was accepted, send it again in {retry} s",
            headers={"Retry-After": str(retry)},
        )
