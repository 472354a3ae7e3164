"""The console: web pages for finance, account people and superusers, on the API's services and role table.

``install(app)`` mounts it on the admin service under ``/console``; ``/`` leads there.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from billing.console import web
from billing.console.views import account_pages, admin_pages, auth, finance, products_page, webhooks_page
from billing.domain.exceptions import BillingError, NotFound, PermissionDenied


def install(app: FastAPI) -> None:
    """Mount the console on the admin app under ``/console``, sharing its state (engine, clock, settings).

    A mounted app of its own: its routes are not the API's (no OpenAPI entries, HTML error pages).
    """
    pages = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    pages.state = app.state
    pages.mount("/static", StaticFiles(directory=web.HERE / "static"), name="console-static")
    for module in (auth, finance, account_pages, products_page, admin_pages, webhooks_page):
        pages.include_router(module.router)
    pages.add_exception_handler(BillingError, _error_page)
    pages.add_exception_handler(web.SignInRequired, _signed_out)
    pages.add_exception_handler(web.CsrfRefused, _csrf_refused)
    app.mount(web.PREFIX, pages)
    app.add_route("/", _to_console, include_in_schema=False)


async def _to_console(_request: Request) -> RedirectResponse:
    return RedirectResponse(web.PREFIX + "/", status_code=307)


async def _error_page(request: Request, error: Exception) -> Response:
    if isinstance(error, NotFound):
        return web.render(request, "error.html", 404, title="Not found", message="There is no such page here.")
    status = 403 if isinstance(error, PermissionDenied) else 400
    return web.render(
        request, "error.html", status, title="Not allowed" if status == 403 else "Refused", message=str(error)
    )


async def _signed_out(request: Request, _error: Exception) -> Response:
    return web.sign_in_redirect(request)


async def _csrf_refused(request: Request, _error: Exception) -> Response:
    message = "This form was sent without its security token, so nothing was changed. Reload the page and try again."
    return web.render(request, "error.html", 403, title="Form refused", message=message)
