"""Webhook endpoints: an account's (its superuser's) and platform-wide ones (admin's and finance's)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from billing.api.deps import CallerDep, NowDep, SessionDep, SettingsDep
from billing.api.schemas_webhooks import DeliveryOut, EndpointIn, EndpointOut, EndpointPatch, NewEndpointOut
from billing.settings import BillingSettings
from billing.webhooks import endpoints
from billing.webhooks.orm import WebhookEndpoint

router = APIRouter(prefix="/v1", tags=["webhooks"])
EndpointPath = Annotated[str, Path(max_length=64, description="A webhook endpoint id, e.g. whe_3f9a1c2b7d4e5f60.")]
DeliveryPath = Annotated[int, Path(ge=1, le=2**63 - 1, description="A delivery id from the endpoint's log.")]


def url_policy(settings: BillingSettings) -> endpoints.UrlPolicy:
    """The address rule of backends (FANMETER_BACKEND_ALLOWED_NETWORKS) applies to webhook URLs too."""
    return endpoints.UrlPolicy(settings.allowed_networks)


def _out(row: WebhookEndpoint) -> EndpointOut:
    return EndpointOut.model_validate(endpoints.endpoint_json(row))


def _register(
    session: SessionDep, caller: CallerDep, now: NowDep, settings: SettingsDep, account_id: str | None, body: EndpointIn
) -> NewEndpointOut:
    issued = endpoints.register(
        session, caller, account_id, body.url, body.event_types, body.description, url_policy(settings), now
    )
    return NewEndpointOut(**_out(issued.row).model_dump(), secret=issued.secret)


@router.post("/accounts/{account_id}/webhook-endpoints", status_code=status.HTTP_201_CREATED)
def register_account_endpoint(
    account_id: str, body: EndpointIn, session: SessionDep, caller: CallerDep, now: NowDep, settings: SettingsDep
) -> NewEndpointOut:
    """Register an endpoint for the account's events (its superuser); the secret is in this response only."""
    return _register(session, caller, now, settings, account_id, body)


@router.get("/accounts/{account_id}/webhook-endpoints")
def list_account_endpoints(account_id: str, session: SessionDep, caller: CallerDep) -> list[EndpointOut]:
    """The account's endpoints, oldest first (never their secrets)."""
    return [_out(row) for row in endpoints.list_endpoints(session, caller, account_id)]


@router.post("/webhook-endpoints", status_code=status.HTTP_201_CREATED)
def register_platform_endpoint(
    body: EndpointIn, session: SessionDep, caller: CallerDep, now: NowDep, settings: SettingsDep
) -> NewEndpointOut:
    """Register a platform-wide endpoint (admin, finance): every account's events and the platform's."""
    return _register(session, caller, now, settings, None, body)


@router.get("/webhook-endpoints")
def list_platform_endpoints(session: SessionDep, caller: CallerDep) -> list[EndpointOut]:
    """The platform-wide endpoints, oldest first."""
    return [_out(row) for row in endpoints.list_endpoints(session, caller, None)]


@router.get("/webhook-endpoints/{endpoint_id}")
def get_endpoint(endpoint_id: EndpointPath, session: SessionDep, caller: CallerDep) -> EndpointOut:
    """One endpoint (another account's answers 404)."""
    return _out(endpoints.get_endpoint(session, caller, endpoint_id))


@router.patch("/webhook-endpoints/{endpoint_id}")
def update_endpoint(
    endpoint_id: EndpointPath, body: EndpointPatch, session: SessionDep, caller: CallerDep, now: NowDep
) -> EndpointOut:
    """Enable or disable the endpoint (audited)."""
    row = endpoints.get_endpoint(session, caller, endpoint_id)
    endpoints.set_enabled(session, caller, row, body.enabled, now)
    return _out(row)


@router.get("/webhook-endpoints/{endpoint_id}/deliveries")
def delivery_log(
    endpoint_id: EndpointPath,
    session: SessionDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[DeliveryOut]:
    """The delivery log, newest event first: status, attempts, last response code or error, next retry."""
    row = endpoints.get_endpoint(session, caller, endpoint_id)
    return [DeliveryOut.model_validate(entry.to_json()) for entry in endpoints.delivery_log(session, row, limit)]


@router.post(
    "/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,
)
def redeliver(
    endpoint_id: EndpointPath, delivery_id: DeliveryPath, session: SessionDep, caller: CallerDep, now: NowDep
) -> Response:
    """Send the event again at once, with a new day of retries (audited); it keeps its webhook-id."""
    row = endpoints.get_endpoint(session, caller, endpoint_id)
    endpoints.redeliver(session, caller, row, delivery_id, now)
    return Response(status_code=status.HTTP_202_ACCEPTED)
