"""The superuser's products page: Compute and Fanout, purchase and cancel, Fanout per service.

Every rule of the Fanout product page that can be known before trying is asked of
``billing.domain.fanout_rules`` with the facts on record, and its reason is shown beside the
control it blocks; what only a try can tell (a fresh TLS check) is shown after the try, in the
same place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy.orm import Session

from billing import accounts, catalog, products
from billing.api.routers.services import tls_policy
from billing.console.web import PREFIX, Page, PageDep, redirect
from billing.domain import fanout_rules
from billing.domain.exceptions import BillingError
from billing.domain.roles import Action, Principal
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
    purchase_reasons: list[str]
    cancel_reasons: list[str]


@dataclass(frozen=True)
class ServiceState:
    service: Service
    enable_reasons: list[str]


def _purchase_reasons(product: str, plan: str, purchased: set[str]) -> list[str]:
    """Every rule that blocks purchasing ``product``, each in plain words (not only the first)."""
    if product != fanout_rules.FANOUT:
        return []
    reasons = []
    if plan != fanout_rules.PAID:
        reasons.append("Fanout requires a paid account; this is a trial account (ask the platform to mark it paid).")
    if fanout_rules.COMPUTE not in purchased:
        reasons.append("Fanout requires Compute: purchase Compute first (Compute is billed separately).")
    return reasons


def _names(values: list[str]) -> str:
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]


def enable_reasons(
    purchased: set[str], service: fanout_rules.ServiceFacts, backends: list[fanout_rules.BackendFacts]
) -> list[str]:
    """Every product rule that blocks turning Fanout on for ``service``, each in plain words.

    The domain's ``enable_refusal`` answers with the first rule broken (it refuses a request);
    a page shows them all before the person tries, so fixing one does not reveal the next.
    """
    reasons = []
    if fanout_rules.FANOUT not in purchased:
        reasons.append("Fanout has not been purchased for this account yet: purchase it above first.")
    if service.type != fanout_rules.COMPUTE:
        reasons.append(
            "Fanout is only available for Compute services, and this is a Delivery service. "
            "Use service chaining instead: put a Compute service with Fanout enabled in front of it."
        )
    for feature in fanout_rules.incompatible_features(service):
        reasons.append(f"This service uses {feature}, which Fanout is not compatible with: turn {feature} off first.")
    for backend in backends:
        if backend.extra_settings:
            reasons.append(
                f"Backend “{backend.name}” sets {_names(sorted(backend.extra_settings))}: a Fanout service’s "
                "backends may set only name, address, TLS on or off and override host. Remove the other settings."
            )
        if fanout_rules.tls_refusal(backend):
            reasons.append(
                f"Backend “{backend.name}” ({backend.address}) has a TLS certificate that is not publicly "
                "trusted (self-signed, or not from a public certification authority): Fanout needs one signed by a "
                "public certification authority."
            )
    return reasons


def _enable_reasons(page: Page, service: Service, purchased: set[str]) -> list[str]:
    backends = [catalog.backend_facts(b) for b in catalog.list_backends(page.db, service.id)]
    return enable_reasons(purchased, catalog.facts(service), backends)


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
            _purchase_reasons(product, account.plan, purchased),
            [reason] if (reason := fanout_rules.cancel_refusal(product, purchased)) else [],
        )
        for product in fanout_rules.PRODUCTS
    ]
    services = [
        ServiceState(s, [] if s.fanout_enabled else _enable_reasons(page, s, purchased))
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
    return _change_product(page, account_id, product, products.purchase, "purchased")


@router.post("/accounts/{account_id}/products/{product}/cancel")
def cancel(page: PageDep, account_id: str, product: str) -> Response:
    return _change_product(page, account_id, product, products.cancel, "cancelled")


def _change_product(
    page: Page,
    account_id: str,
    product: str,
    change: Callable[[Session, Principal, str, str, datetime], object],
    done: str,
) -> Response:
    """Purchase or cancel ``product`` (``change`` is products.purchase or products.cancel); 404 for no such product."""
    products.require_purchaser(page.principal, account_id)
    if product not in fanout_rules.PRODUCTS:
        return _render(page, account_id, status_code=404)
    return _attempt(
        page, account_id, product, lambda: change(page.db, page.principal, account_id, product, page.now), done
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
