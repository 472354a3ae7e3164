"""The console's glue: templates, the signed-in person of a request, form tokens, and error pages.

Routes stay thin: they take a ``Page`` (the person, the clock, a session), call the billing
services, and ``render`` plain values. Role decisions are ``billing.access.require`` /
``billing.domain.roles.decide``, exactly the API's; a ``NotFound`` becomes the 404 page.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session, sessionmaker

from billing.console import sessions
from billing.console.filters import FILTERS
from billing.domain.roles import Action, Principal, Verdict, decide

HERE = Path(__file__).parent
PREFIX = "/console"
COOKIE = "fm_session"
SIGN_IN_COOKIE = "fm_signin"  # the form token of the sign-in page, before there is a session
CSRF_FIELD = "csrf_token"

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,  # compiled once per process: no stat of every template and import per page
)
templates.filters.update(FILTERS)


class SignInRequired(Exception):
    """No valid session: the person is sent to the sign-in page."""


class CsrfRefused(Exception):
    """A form posted without the session's form token."""


@dataclass
class Page:
    """One request of a signed-in person: who, their form token, a database session and the time."""

    request: Request
    principal: Principal
    csrf: str
    email: str | None
    db: Session
    now: datetime

    def may(self, action: Action, account_id: str | None) -> bool:
        """Whether the role table allows ``action`` on ``account_id`` (the API's decision)."""
        return decide(self.principal, action, account_id) is Verdict.ALLOW

    def render(self, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        return render(self.request, template, status_code, page=self, nav=navigation(self), **values)


def render(request: Request, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    """Render a template with the values every page has (the prefix, the current path)."""
    html = templates.get_template(template).render(prefix=PREFIX, path=request.url.path, **values)
    response = HTMLResponse(html, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
    )
    return response


def _db(request: Request) -> Iterator[Session]:
    factory: sessionmaker[Session] = request.app.state.sessions
    with factory(bind=request.app.state.engine) as session:
        yield session


def _clock(request: Request) -> datetime:
    clock: Callable[[], datetime] = request.app.state.clock
    return clock()


async def _form_token(request: Request) -> str | None:
    if request.method in ("GET", "HEAD"):
        return None
    form = await request.form()
    value = form.get(CSRF_FIELD)
    return value if isinstance(value, str) else None


def _page(
    request: Request,
    db: Annotated[Session, Depends(_db)],
    posted: Annotated[str | None, Depends(_form_token)],
) -> Page:
    now = _clock(request)
    secret = request.cookies.get(COOKIE)
    found = sessions.visit(db.connection(), secret, now) if secret else None
    db.rollback()  # end the lookup's transaction: a write takes its own
    if found is None:
        raise SignInRequired()
    if request.method not in ("GET", "HEAD") and not sessions.csrf_matches(found.csrf, posted):
        raise CsrfRefused()
    return Page(request, found.principal, found.csrf, found.email, db, now)


PageDep = Annotated[Page, Depends(_page)]
DbDep = Annotated[Session, Depends(_db)]


def now_of(request: Request) -> datetime:
    return _clock(request)


def redirect(path: str) -> RedirectResponse:
    """After a successful form post: see the result (303 turns the POST into a GET)."""
    return RedirectResponse(path, status_code=303)


def set_session_cookie(request: Request, response: Response, signed: sessions.Signed) -> None:
    """HttpOnly, SameSite=Strict, Secure when the console is served over https; expires with the session."""
    response.set_cookie(
        COOKIE,
        signed.secret,
        max_age=int(sessions.SESSION_LIFETIME.total_seconds()),  # the server checks expires_at itself
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=PREFIX,
    )


def sign_in_token(request: Request) -> str:
    """The sign-in form's token: the one in its cookie, or a new one."""
    return request.cookies.get(SIGN_IN_COOKIE) or secrets.token_urlsafe(24)


def set_sign_in_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        SIGN_IN_COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https", path=PREFIX
    )


@dataclass(frozen=True)
class NavItem:
    label: str
    href: str
    current: bool = False


def _mark_current(items: list[NavItem], path: str) -> list[NavItem]:
    """The item the page belongs to: a statement page is under Statements, else the longest matching link."""
    chosen = next((i for i in items if i.label == "Statements" and "/statements" in path), None)
    if chosen is None:
        matching = [i for i in items if path.startswith(i.href)]
        chosen = max(matching, key=lambda i: len(i.href), default=None)
    return [NavItem(i.label, i.href, i is chosen) for i in items]


def navigation(page: Page) -> list[NavItem]:
    """The pages this person may open, in the order of their work."""
    principal, items = page.principal, []
    home = principal.account_id
    if principal.account_id is None:
        if page.may(Action.MANAGE_STATEMENTS, None) or page.may(Action.READ_STATEMENTS, None):
            items.append(NavItem("Statements", f"{PREFIX}/statements"))
        if page.may(Action.MANAGE_ACCOUNTS, None) or page.may(Action.READ_USAGE, None):
            items.append(NavItem("Accounts", f"{PREFIX}/accounts"))
        if page.may(Action.MANAGE_PEOPLE, None):
            items.append(NavItem("People", f"{PREFIX}/platform/people"))
        if page.may(Action.SET_RATES, None):
            items.append(NavItem("Rate cards", f"{PREFIX}/rate-cards"))
        if page.may(Action.MANAGE_PLATFORM_WEBHOOKS, None):
            items.append(NavItem("Webhooks", f"{PREFIX}/platform/webhooks"))
        if page.may(Action.READ_AUDIT, None):
            items.append(NavItem("Audit", f"{PREFIX}/audit"))
    else:
        base = f"{PREFIX}/accounts/{home}"
        if page.may(Action.READ_USAGE, home):
            items.append(NavItem("Usage", f"{base}/usage"))
        if page.may(Action.READ_STATEMENTS, home):
            items.append(NavItem("Statements", f"{base}/statements"))
        items.append(NavItem("Services", f"{base}/services"))
        if page.may(Action.PURCHASE_PRODUCTS, home):
            items.append(NavItem("Products", f"{base}/products"))
        if page.may(Action.MANAGE_PEOPLE, home):
            items.append(NavItem("People", f"{base}/people"))
        if page.may(Action.MANAGE_WEBHOOKS, home):
            items.append(NavItem("Webhooks", f"{base}/webhooks"))
        if page.may(Action.READ_AUDIT, home):
            items.append(NavItem("Audit", f"{PREFIX}/audit"))
    items.append(NavItem("API docs", "/docs"))
    return _mark_current(items, page.request.url.path)


def sign_in_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{PREFIX}/sign-in?next={quote(target)}", status_code=303)


async def _form_values(request: Request) -> dict[str, str]:
    """A posted form's text fields (the form token included)."""
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


FormDep = Annotated[dict[str, str], Depends(_form_values)]
