"""``POST /v1/events`` (ingest tokens) and the status of what was sent."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request, status

from billing import events
from billing.access import require
from billing.api.deps import CallerDep, NowDep, SessionDep
from billing.api.rate_limits import admit_events
from billing.api.schemas_usage import BatchStatusOut, EventsAccepted
from billing.domain.exceptions import PermissionDenied
from billing.domain.roles import Action, Principal

router = APIRouter(prefix="/v1", tags=["events"])

EVENT_TYPES = ("application/cloudevents-batch+json", "application/cloudevents+json", "application/json")


def _require_ingest(caller: Principal) -> None:
    if caller.kind != "ingest":
        raise PermissionDenied("only an ingest token may send events")


@router.post(
    "/events",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EventsAccepted,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                media: {"schema": {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]}}
                for media in EVENT_TYPES
            },
        }
    },
    responses={
        413: {"description": "The body is over FANMETER_MAX_EVENTS_BODY_BYTES (10 MiB)."},
        415: {"description": "Not a CloudEvents JSON body."},
        429: {
            "description": "The token is over its rate (FANMETER_EVENTS_RATE_PER_SECOND, _BURST): nothing was "
            "accepted; send again after Retry-After seconds.",
            "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
        },
    },
)
async def post_events(
    request: Request,
    caller: CallerDep,
    session: SessionDep,
    now: NowDep,
    content_type: Annotated[str | None, Header()] = None,
) -> EventsAccepted:
    """Accept a CloudEvents batch (or one structured event) and hand it to the metering pipeline."""
    _require_ingest(caller)
    admit_events(request, caller.token_id)  # before the body is read: a refused request sends nothing on
    media = (content_type or "").split(";")[0].strip().lower()
    if media not in EVENT_TYPES:
        raise HTTPException(415, f"content type must be one of {', '.join(EVENT_TYPES)}, got {media or 'none'!r}")
    body = await _body_within_limit(request)
    texts = events.split_events(body)
    batch_size: int = request.app.state.ingest_batch_size
    batch_id, messages = events.send(
        request.app.state.pipeline,
        texts,
        batch_size,
        lambda batch: events.record_submission(session, batch, caller.token_id, now),
    )
    return EventsAccepted(batch_id=batch_id, events=len(texts), messages=messages)


async def _body_within_limit(request: Request) -> bytes:
    """Read the body (``billing.api.body_limit`` has refused it with 413 past the events limit already)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
    return bytes(body)


@router.get("/events/batches/{batch_id}", response_model=BatchStatusOut)
def batch_status(batch_id: str, request: Request, caller: CallerDep, session: SessionDep) -> BatchStatusOut:
    """How far the pipeline has got: counts, rejection reasons, and whether every event is folded.

    Only the ingest token that sent the batch (and the platform admin) sees it; any other token and
    an unknown id get 404.
    """
    if caller.kind != "ingest":
        require(caller, Action.MANAGE_ACCOUNTS, None)
    progress, expected = events.progress(session, request.app.state.pipeline, caller, batch_id)
    return BatchStatusOut(
        batch_id=batch_id,
        messages=expected,
        messages_done=progress.batches_done,
        accepted=progress.accepted,
        duplicates=progress.duplicates,
        rejected=progress.rejected,
        pending_rollup_batches=progress.pending_left,
        rejection_reasons=dict(progress.rejection_reasons),
        done=progress.batches_done >= expected and progress.pending_left == 0,
    )
