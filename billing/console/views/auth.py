"""Sign in (by API token or one-time link), sign out, and the home page that leads each role to its work."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from billing.console import sessions, web
from billing.console.web import PREFIX, DbDep, FormDep, PageDep
from billing.domain.roles import Action

router = APIRouter()


def _safe_next(target: str | None) -> str:
    """Only a path of the console itself (no open redirect)."""
    if target and target.startswith(PREFIX) and not target.startswith("//"):
        return target
    return PREFIX + "/"


@router.get("/sign-in")
def sign_in_page(request: Request, next: str | None = None, error: str | None = None) -> Response:  # noqa: A002
    return _sign_in_form(request, "sign_in.html", 401 if error else 200, next=_safe_next(next), error=error)


@router.post("/sign-in")
def sign_in(request: Request, db: DbDep, form: FormDep) -> Response:
    _check_sign_in_form(request, form)
    token = form.get("token", "")
    signed = sessions.sign_in_with_token(db, token, web.now_of(request)) if token.strip() else None
    if signed is None:
        message = "Enter your API token." if not token.strip() else "That token is unknown, revoked or not a person's."
        return sign_in_page(request, form.get("next"), message)
    return _signed_in(request, signed, _safe_next(form.get("next")))


@router.get("/sign-in/link")
def link_page(request: Request, secret: str = "") -> Response:
    """A link only shows a button: following it (a mail scanner prefetching it) does not use it up."""
    return _sign_in_form(request, "sign_in_link.html", secret=secret)


@router.post("/sign-in/link")
def use_link(request: Request, db: DbDep, form: FormDep) -> Response:
    _check_sign_in_form(request, form)
    signed = sessions.redeem_link(db, form.get("secret", ""), web.now_of(request))
    if signed is None:
        return sign_in_page(request, None, "That sign-in link was already used, has expired, or its token was revoked.")
    return _signed_in(request, signed, PREFIX + "/")


def _sign_in_form(request: Request, template: str, status_code: int = 200, **values: Any) -> Response:
    """A page with a sign-in form: a fresh form token, in the page and in the sign-in cookie."""
    token = web.sign_in_token(request)
    response = web.render(request, template, status_code, title="Sign in", form_token=token, **values)
    web.set_sign_in_cookie(request, response, token)
    return response


def _check_sign_in_form(request: Request, form: dict[str, str]) -> None:
    """Refuse a sign-in form whose token is not the one in the sign-in cookie."""
    expected = request.cookies.get(web.SIGN_IN_COOKIE, "")
    if not sessions.csrf_matches(expected, form.get(web.CSRF_FIELD)):
        raise web.CsrfRefused()


def _signed_in(request: Request, signed: sessions.Signed, target: str) -> Response:
    """Off to ``target`` with the new session's cookie."""
    response = web.redirect(target)
    web.set_session_cookie(request, response, signed)
    return response


@router.post("/sign-out")
def sign_out(request: Request, page: PageDep) -> Response:
    sessions.sign_out(page.db, request.cookies.get(web.COOKIE, ""), page.now)
    response = web.redirect(f"{PREFIX}/sign-in")
    response.delete_cookie(web.COOKIE, path=PREFIX)
    return response


@router.get("/")
def home(page: PageDep) -> RedirectResponse:
    """Each role's first page: finance the month's statements, account people their usage."""
    account = page.principal.account_id
    if account is None:
        target = "/statements" if page.may(Action.READ_STATEMENTS, None) else "/accounts"
        return RedirectResponse(PREFIX + target, status_code=303)
    if page.may(Action.READ_USAGE, account):
        return RedirectResponse(f"{PREFIX}/accounts/{account}/usage", status_code=303)
    return RedirectResponse(f"{PREFIX}/accounts/{account}/services", status_code=303)
