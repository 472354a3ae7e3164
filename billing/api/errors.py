"""Domain errors become HTTP answers with a reason; every error body has the ``Problem`` shape."""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import exc as sa_exc
from starlette.types import ASGIApp, Receive, Scope, Send

from billing.api.body_limit import BodyLimit
from billing.domain.exceptions import (
    BillingError,
    Conflict,
    InvalidCreditNote,
    NotFound,
    PermissionDenied,
    RuleViolation,
)
from metering.client import ServiceUnavailable, outage


class Problem(BaseModel):
    """Why a request was refused."""

    detail: str


STATUS_BY_ERROR: tuple[tuple[type[BillingError], int], ...] = (
    (NotFound, 404),
    (PermissionDenied, 403),
    (Conflict, 409),
    (RuleViolation, 400),
    (InvalidCreditNote, 422),
)

ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {"model": Problem, "description": "A rule refuses the request; `detail` says which."},
    401: {"model": Problem, "description": "No valid bearer token."},
    403: {"model": Problem, "description": "The caller's role may not do this."},
    404: {"model": Problem, "description": "No such resource in the caller's reach."},
    409: {"model": Problem, "description": "The resource's state forbids this change."},
    413: {"model": Problem, "description": "The request body is over the size limit."},
    503: {"model": Problem, "description": "The database or the message broker is unreachable for now; retry."},
}

# What a client is told to wait before retrying while the database or message broker is down.
UNAVAILABLE_RETRY_AFTER_S = 5
# The errors that mean a service is down, not that the request is wrong; anything else stays a 500.
OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    ServiceUnavailable,
)


def _status_for(error: BillingError) -> int:
    for kind, status in STATUS_BY_ERROR:
        if isinstance(error, kind):
            return status
    return 400  # every other domain error is bad input: an invalid rate card, amount or quantity


async def _billing_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, BillingError)
    return JSONResponse({"detail": str(error)}, status_code=_status_for(error))


async def _unavailable(_request: Request, error: Exception) -> JSONResponse:
    """A database or message broker outage is a 503 with its reason (no address or driver text goes
    to the client); SQLAlchemy's pool reconnects by itself once the service is back."""
    broker_down = isinstance(error, ServiceUnavailable) and "message broker" in str(error)
    what = "message broker" if broker_down else outage(error) or "database"
    detail = f"the {what} is unavailable (restarting or unreachable); retry in a few seconds"
    headers = {"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)}
    return JSONResponse({"detail": detail}, status_code=503, headers=headers)


class RefuseNul:
    """A NUL in the path or query is bad input (PostgreSQL cannot store or compare it): 400.

    A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` costs a task group and memory
    streams on every request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _has_nul(scope):
            response = JSONResponse({"detail": "the path or query contains a NUL character"}, status_code=400)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _has_nul(scope: Scope) -> bool:
    query = unquote_to_bytes(scope.get("query_string", b""))
    return "\x00" in scope["path"] or b"\x00" in query


def install(app: FastAPI) -> None:
    """Map every billing domain error to its status code, refuse NUL characters in URLs, and refuse
    oversized bodies before anything reads them (``app.state.settings`` gives the limits)."""
    app.add_exception_handler(BillingError, _billing_error)
    for kind in OUTAGE_ERRORS:
        app.add_exception_handler(kind, _unavailable)
    app.add_middleware(RefuseNul)
    settings = app.state.settings
    events_limit = {("POST", "/v1/events"): settings.max_events_body_bytes}
    app.add_middleware(
        BodyLimit,
        default_limit=settings.max_body_bytes,
        limits=events_limit,
        body_timeout_s=settings.admin_body_timeout_seconds,
    )  # outermost
