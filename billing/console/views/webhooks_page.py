"""Webhook endpoints in the console: an account's (its superuser) and platform-wide ones (admin, finance).

The list page registers an endpoint and shows its signing secret once (sealed on the console
session for the one view the redirect leads to, as new tokens are); an endpoint's page is its
delivery log, with redeliver per delivery and enable/disable. The same services as the API
(``billing.webhooks.endpoints``), so the same role checks and audit entries.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from billing.api.routers.webhooks import url_policy
from billing.console import sessions
from billing.console.web import COOKIE, PREFIX, FormDep, Page, PageDep, redirect
from billing.domain.exceptions import BillingError
from billing.webhooks import endpoints
from billing.webhooks.events import EVENT_TYPES

router = APIRouter()
EVENT_LABELS = {
    "statement.drafted": "Statement drafted",
    "statement.finalized": "Statement finalized",
    "credit_note.issued": "Credit note issued",
    "usage.threshold_crossed": "Usage threshold crossed",
    "fanout.enabled": "Fanout enabled",
    "fanout.disabled": "Fanout disabled",
}


def _list_path(account_id: str | None) -> str:
    return f"{PREFIX}/platform/webhooks" if account_id is None else f"{PREFIX}/accounts/{account_id}/webhooks"


def _list(
    page: Page,
    account_id: str | None,
    new: bool = False,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    rows = endpoints.list_endpoints(page.db, page.principal, account_id)
    revealed = sessions.take_reveal(page.db, page.request.cookies.get(COOKIE, ""), page.now) if new else None
    return page.render(
        "webhooks.html",
        status_code=status_code,
        title="Webhooks",
        account_id=account_id,
        endpoints=[endpoints.endpoint_json(row) for row in rows],
        event_types=[(event_type, EVENT_LABELS[event_type]) for event_type in EVENT_TYPES],
        labels=EVENT_LABELS,
        base=_list_path(account_id),
        new=new,
        revealed=revealed,
        errors=errors or {},
        values=values or {},
    )


@router.get("/platform/webhooks")
def platform_webhooks(page: PageDep, new: str | None = None) -> Response:
    return _list(page, None, new == "endpoint")


@router.get("/accounts/{account_id}/webhooks")
def account_webhooks(page: PageDep, account_id: str, new: str | None = None) -> Response:
    return _list(page, account_id, new == "endpoint")


@router.post("/platform/webhooks")
def register_platform(page: PageDep, form: FormDep) -> Response:
    return _register(page, None, form)


@router.post("/accounts/{account_id}/webhooks")
def register_account(page: PageDep, form: FormDep, account_id: str) -> Response:
    return _register(page, account_id, form)


def _register(page: Page, account_id: str | None, form: dict[str, str]) -> Response:
    """Register, then POST-redirect-GET to the list, which shows the secret this once."""
    url, description = form.get("url", "").strip(), form.get("description", "").strip()[:200]
    wanted = [event_type for event_type in EVENT_TYPES if form.get(f"event_{event_type}")]
    policy = url_policy(page.request.app.state.settings)
    try:
        issued = endpoints.register(page.db, page.principal, account_id, url, wanted, description, policy, page.now)
    except BillingError as error:
        page.db.rollback()
        field = "event_types" if str(error).startswith("event_types") else "url"
        return _list(page, account_id, errors={field: str(error)}, values=form, status_code=400)
    values = {"id": issued.row.id, "url": issued.row.url, "secret": issued.secret}
    sessions.keep_reveal(page.db, page.request.cookies.get(COOKIE, ""), values, page.now)
    page.db.commit()
    return redirect(f"{_list_path(account_id)}?new=endpoint")


@router.get("/webhooks/{endpoint_id}")
def endpoint_page(page: PageDep, endpoint_id: str, done: str | None = None) -> Response:
    """One endpoint: its settings and its delivery log (newest event first)."""
    row = endpoints.get_endpoint(page.db, page.principal, endpoint_id)
    notices = {"redelivered": "Queued again: it is sent with the next delivery pass.", "enabled": "Enabled."}
    notices["disabled"] = "Disabled: nothing is sent to it until it is enabled again."
    return page.render(
        "webhook_endpoint.html",
        title=f"Webhook {row.id}",
        endpoint=endpoints.endpoint_json(row),
        log=endpoints.delivery_log(page.db, row),
        labels=EVENT_LABELS,
        back=_list_path(row.account_id),
        notice=notices.get(done or ""),
    )


@router.post("/webhooks/{endpoint_id}/enabled")
def toggle(page: PageDep, endpoint_id: str) -> Response:
    row = endpoints.get_endpoint(page.db, page.principal, endpoint_id)
    enable = row.disabled_at is not None
    endpoints.set_enabled(page.db, page.principal, row, enable, page.now)
    return redirect(f"{PREFIX}/webhooks/{endpoint_id}?done={'enabled' if enable else 'disabled'}")


@router.post("/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver")
def redeliver(page: PageDep, endpoint_id: str, delivery_id: int) -> Response:
    row = endpoints.get_endpoint(page.db, page.principal, endpoint_id)
    endpoints.redeliver(page.db, page.principal, row, delivery_id, page.now)
    return redirect(f"{PREFIX}/webhooks/{endpoint_id}?done=redelivered")
