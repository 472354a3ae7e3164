"""``/metrics`` for Prometheus, and ingest tokens for event producers."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from billing import metrics
from billing.access import require
from billing.accounts import issue_audited, token_json
from billing.api.deps import CallerDep, NowDep, SessionDep
from billing.api.schemas import NewTokenOut, TokenIn
from billing.domain.roles import Action
from metering import health as metering_health

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}, "description": "Prometheus text."}
    },
)
def prometheus_metrics(request: Request, now: NowDep) -> Response:
    """Events accepted, duplicate and rejected, pipeline lag and open connections."""
    figures = metering_health.read_figures(request.app.state.engine, now, request.app.state.open_window_us)
    return Response(metrics.render(figures), media_type=CONTENT_TYPE_LATEST)


@router.post("/v1/ingest-tokens", status_code=status.HTTP_201_CREATED, response_model=NewTokenOut)
def create_ingest_token(body: TokenIn, session: SessionDep, caller: CallerDep, now: NowDep) -> NewTokenOut:
    """Issue a token that may only send events to `POST /v1/events` (platform admin)."""
    require(caller, Action.MANAGE_ACCOUNTS, None)
    issued = issue_audited(session, caller, kind="ingest", name=body.name, now=now)
    return NewTokenOut(**token_json(issued.row), token=issued.secret)
