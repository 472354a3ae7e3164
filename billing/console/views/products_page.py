"""The superuser's products page: Compute and Fanout, purchase and cancel, Fanout per service.

Every rule of the Fanout product page that can be known before trying is asked of
``billing.domain.fanout_rules`` with the facts on record, and its reason is shown beside the
control it blocks; what only a try can tell (a fresh TLS check) is shown after the try, in the
same place.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.responses import Response

from billing import accounts, catalog, products
from billing.api.routers.services import tls_policy
from billing.console.web import PREFIX, Page, PageDep, redirect
from billing.domain import fanout_rules
from billing.domain.exceptions import BillingError
from billing.domain.roles import Action
from billing.orm import Service

router = APIRouter()
LABELS = {"compute": "Compute", "fanout": "Fanout"}
BLURBS = {
    "compute": "Run code at the edge. A prerequisite for Fanout; billed separately.",
    "fanout": "Publish/subscribe at the edge: SSE, HTTP streaming, long-polling and WebSockets, metered per "
    "connection minute, message and GB.",
}


@dataclass(frozen=True)
class ProductState:
    id: str
    label: str
    blurb: str
    enabled: bool
    purchase_reason: str | None
    cancel_reason: str | None


@dataclass(frozen=True)
class ServiceState:
    service: Service
    enable_reason: str | None


def _enable_reason(page: Page, service: Service, purchased: set[str]) -> str | None:
    if fanout_rules.FANOUT not in purchased:
        return "Fanout has not been purchased for this account yet: purchase it above first."
    backends = [catalog.backend_facts(b) for b in catalog.list_backends(page.db, service.id)]
    return fanout_rules.enable_refusal(purchased, catalog.facts(service), backends)


def _render(
    page: Page, account_id: str, errors: dict[str, str] | None = None, notice: str | None = None, status_code: int = 200
) -> Response:
    products.require_purchaser(page.principal, account_id)
    account = accounts.get_account(page.db, account_id)
    purchased = set(accounts.products_of(page.db, account_id))
    states = [
        ProductState(
            product,
            LABELS[product],
            BLURBS[product],
            product in purchased,
            fanout_rules.purchase_refusal(product, account.plan, purchased),
            fanout_rules.cancel_refusal(product, purchased),
        )
        for product in fanout_rules.PRODUCTS
    ]
    services = [
        ServiceState(s, None if s.fanout_enabled else _enable_reason(page, s, purchased))
        for s in catalog.list_services(page.db, account_id)
    ]
    return page.render(
        "products.html",
        status_code=status_code,
        title="Products",
        account=account,
        products=states,
        services=services,
        errors=errors or {},
        notice=notice,
        base=f"{PREFIX}/accounts/{account_id}/products",
        can_manage_services=page.may(Action.MANAGE_SERVICES, account_id),
    )


@router.get("/accounts/{account_id}/products")
def products_view(page: PageDep, account_id: str, done: str | None = None) -> Response:
    notices = {
        "purchased": "Purchased.",
        "cancelled": "Cancelled.",
        "enabled": "Fanout is on for the service.",
        "disabled": "Fanout is off for the service.",
    }
    return _render(page, account_id, notice=notices.get(done or ""))


def _attempt(page: Page, account_id: str, key: str, action: object, done: str) -> Response:
    try:
        action()  # type: ignore[operator]
    except BillingError as error:
        page.db.rollback()
        return _render(page, account_id, errors={key: str(error)}, status_code=400)
    return redirect(f"{PREFIX}/accounts/{account_id}/products?done={done}")


@router.post("/accounts/{account_id}/products/{product}/purchase")
def purchase(page: PageDep, account_id: str, product: str) -> Response:
    products.require_purchaser(page.principal, account_id)
    if product not in fanout_rules.PRODUCTS:
        return _render(page, account_id, status_code=404)
    return _attempt(
        page,
        account_id,
        product,
        lambda: products.purchase(page.db, page.principal, account_id, product, page.now),
        "purchased",
    )


@router.post("/accounts/{account_id}/products/{product}/cancel")
def cancel(page: PageDep, account_id: str, product: str) -> Response:
    products.require_purchaser(page.principal, account_id)
    if product not in fanout_rules.PRODUCTS:
        return _render(page, account_id, status_code=404)
    return _attempt(
        page,
        account_id,
        product,
        lambda: products.cancel(page.db, page.principal, account_id, product, page.now),
        "cancelled",
    )


@router.post("/accounts/{account_id}/products/services/{service_id}/fanout")
def toggle_fanout(page: PageDep, account_id: str, service_id: str) -> Response:
    products.require_purchaser(page.principal, account_id)
    service = catalog.service_for(page.db, page.principal, service_id, Action.MANAGE_SERVICES)
    settings = page.request.app.state.settings
    if service.fanout_enabled:
        return _attempt(
            page,
            account_id,
            service_id,
            lambda: catalog.disable_fanout(page.db, page.principal, service, page.now),
            "disabled",
        )
    return _attempt(
        page,
        account_id,
        service_id,
        lambda: catalog.enable_fanout(page.db, page.principal, service, tls_policy(settings), page.now),
        "enabled",
    )
