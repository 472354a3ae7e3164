"""Services, their backends and publish tokens."""

from __future__ import annotations

from fastapi import APIRouter, status

from billing import accounts, catalog
from billing.access import require
from billing.api.deps import CallerDep, NowDep, SessionDep, SettingsDep
from billing.api.schemas import NewTokenOut, TokenIn, TokenOut
from billing.api.schemas_services import BackendIn, BackendOut, ServiceIn, ServiceOut, ServicePatch
from billing.domain.roles import Action
from billing.orm import Service
from billing.settings import BillingSettings

router = APIRouter(prefix="/v1", tags=["services"])


def tls_policy(settings: BillingSettings) -> catalog.TlsPolicy:
    """The configuration-time address rule and TLS check as the settings configure them."""
    return catalog.TlsPolicy(settings.tls_check_timeout_seconds, settings.tls_ca_file, settings.allowed_networks)


def _service_out(service: Service) -> ServiceOut:
    return ServiceOut.model_validate(catalog.service_json(service))


@router.post("/accounts/{account_id}/services", status_code=status.HTTP_201_CREATED, response_model=ServiceOut)
def create_service(account_id: str, body: ServiceIn, session: SessionDep, caller: CallerDep, now: NowDep) -> ServiceOut:
    """Create a Compute or Delivery service; Fanout starts off."""
    require(caller, Action.MANAGE_SERVICES, account_id)
    accounts.get_account(session, account_id)
    flags = {"directors": body.directors, "shielding": body.shielding, "ngwaf": body.ngwaf,
             "cross_origin": body.cross_origin}  # fmt: skip
    service = catalog.create_service(session, caller, account_id, name=body.name, type_=body.type, flags=flags, now=now)
    return _service_out(service)


@router.get("/accounts/{account_id}/services", response_model=list[ServiceOut])
def list_services(account_id: str, session: SessionDep, caller: CallerDep) -> list[ServiceOut]:
    """The account's services."""
    require(caller, Action.READ_SERVICES, account_id)
    accounts.get_account(session, account_id)
    return [_service_out(service) for service in catalog.list_services(session, account_id)]


@router.get("/services/{service_id}", response_model=ServiceOut)
def get_service(service_id: str, session: SessionDep, caller: CallerDep) -> ServiceOut:
    """One service with its flags."""
    return _service_out(catalog.service_for(session, caller, service_id, Action.READ_SERVICES))


@router.patch("/services/{service_id}", response_model=ServiceOut)
def update_service(
    service_id: str, body: ServicePatch, session: SessionDep, caller: CallerDep, now: NowDep
) -> ServiceOut:
    """Rename a service, set its directors, shielding and Next-Gen WAF flags (refused with Fanout on), or its
    automatic CORS (``cross_origin``)."""
    service = catalog.service_for(session, caller, service_id, Action.MANAGE_SERVICES)
    changes = body.model_dump(exclude_none=True)
    return _service_out(catalog.update_service(session, caller, service, changes, now))


@router.post("/services/{service_id}/backends", status_code=status.HTTP_201_CREATED, response_model=BackendOut)
def create_backend(
    service_id: str, body: BackendIn, session: SessionDep, caller: CallerDep, now: NowDep, settings: SettingsDep
) -> BackendOut:
    """Add a backend; a TLS backend's certificate is checked against the public CA bundle now."""
    service = catalog.service_for(session, caller, service_id, Action.MANAGE_SERVICES)
    backend = catalog.create_backend(
        session, caller, service, body.fanout_fields(), body.other_settings(), tls_policy(settings), now
    )
    return BackendOut.model_validate(catalog.backend_json(backend))


@router.get("/services/{service_id}/backends", response_model=list[BackendOut])
def list_backends(service_id: str, session: SessionDep, caller: CallerDep) -> list[BackendOut]:
    """The service's backends with their recorded TLS status."""
    service = catalog.service_for(session, caller, service_id, Action.READ_SERVICES)
    return [BackendOut.model_validate(catalog.backend_json(b)) for b in catalog.list_backends(session, service.id)]


@router.post("/services/{service_id}/publish-tokens", status_code=status.HTTP_201_CREATED, response_model=NewTokenOut)
def create_publish_token(
    service_id: str, body: TokenIn, session: SessionDep, caller: CallerDep, now: NowDep
) -> NewTokenOut:
    """Issue a token that publishes to this service only; the secret is in this response only."""
    service = catalog.service_for(session, caller, service_id, Action.MANAGE_SERVICES)
    issued = catalog.create_publish_token(session, caller, service, body.name, now)
    return NewTokenOut(**accounts.token_json(issued.row), token=issued.secret)


@router.get("/services/{service_id}/publish-tokens", response_model=list[TokenOut])
def list_publish_tokens(service_id: str, session: SessionDep, caller: CallerDep) -> list[TokenOut]:
    """The service's publish tokens (never their secrets)."""
    service = catalog.service_for(session, caller, service_id, Action.MANAGE_SERVICES)
    return [TokenOut.model_validate(accounts.token_json(t)) for t in catalog.publish_tokens(session, service.id)]


@router.delete("/services/{service_id}/publish-tokens/{token_id}", response_model=TokenOut)
def revoke_publish_token(
    service_id: str, token_id: str, session: SessionDep, caller: CallerDep, now: NowDep
) -> TokenOut:
    """Revoke one of the service's publish tokens for good."""
    service = catalog.service_for(session, caller, service_id, Action.MANAGE_SERVICES)
    token = catalog.publish_token(session, service, token_id)
    return TokenOut.model_validate(accounts.token_json(accounts.revoke_token(session, caller, token, now)))
