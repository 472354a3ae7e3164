"""Fanout per service, with the paths and shapes of Fastly's enabled-products API."""

from __future__ import annotations

from fastapi import APIRouter, status

from billing import accounts, catalog
from billing.access import require
from billing.api.deps import CallerDep, NowDep, SessionDep, SettingsDep
from billing.api.routers.services import tls_policy
from billing.api.schemas_services import FanoutEnablementOut, FanoutLinks, FanoutServicesOut, ObjectRef
from billing.domain.exceptions import RuleViolation
from billing.domain.roles import Action

PREFIX = "/enabled-products/v1/fanout"
router = APIRouter(prefix=PREFIX, tags=["fanout"])
PRODUCT = ObjectRef(id="fanout", object="product")


def _enablement(service_id: str) -> FanoutEnablementOut:
    return FanoutEnablementOut(
        product=PRODUCT,
        service=ObjectRef(id=service_id, object="service"),
        links=FanoutLinks(self=f"{PREFIX}/services/{service_id}"),
    )


@router.get("/services", response_model=FanoutServicesOut)
def fanout_services(session: SessionDep, caller: CallerDep, account_id: str | None = None) -> FanoutServicesOut:
    """The caller's account's services with Fanout on (platform people pass `account_id`)."""
    account_id = account_id or caller.account_id
    if account_id is None:
        raise RuleViolation("platform users must pass ?account_id= to list an account's Fanout services")
    require(caller, Action.READ_SERVICES, account_id)
    accounts.get_account(session, account_id)
    return FanoutServicesOut(
        product=PRODUCT,
        customer=ObjectRef(id=account_id, object="customer"),
        services=catalog.fanout_services(session, account_id),
        links=FanoutLinks(self=f"{PREFIX}/services"),
    )


@router.put("/services/{service_id}", response_model=FanoutEnablementOut)
def enable_fanout(
    service_id: str, session: SessionDep, caller: CallerDep, now: NowDep, settings: SettingsDep
) -> FanoutEnablementOut:
    """Turn Fanout on for a service, once every rule of the Fanout product page holds (400 names the rule)."""
    service = catalog.service_for(session, caller, service_id, Action.MANAGE_SERVICES)
    catalog.enable_fanout(session, caller, service, tls_policy(settings), now)
    return _enablement(service_id)


@router.get("/services/{service_id}", response_model=FanoutEnablementOut)
def get_fanout(service_id: str, session: SessionDep, caller: CallerDep) -> FanoutEnablementOut:
    """Fanout's status on a service: 200 when on; 400 when off, as Fastly answers for a product not enabled."""
    service = catalog.service_for(session, caller, service_id, Action.READ_SERVICES)
    if not service.fanout_enabled:
        raise RuleViolation(f"Fanout is not enabled on service {service_id}")
    return _enablement(service_id)


@router.delete("/services/{service_id}", status_code=status.HTTP_204_NO_CONTENT)
def disable_fanout(service_id: str, session: SessionDep, caller: CallerDep, now: NowDep) -> None:
    """Turn Fanout off for a service (no body, as Fastly answers)."""
    service = catalog.service_for(session, caller, service_id, Action.MANAGE_SERVICES)
    catalog.disable_fanout(session, caller, service, now)
