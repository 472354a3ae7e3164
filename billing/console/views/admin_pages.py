"""Platform and account administration: accounts, people and tokens, the audit log, rate cards."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import func, select

from billing import accounts, rates
from billing.access import require, require_on
from billing.console import sessions
from billing.console.views.finance import _parse
from billing.console.web import COOKIE, PREFIX, FormDep, Page, PageDep, redirect
from billing.domain.exceptions import BillingError, PermissionDenied
from billing.domain.roles import ACCOUNT_ROLES, PLATFORM_ROLES, Action
from billing.orm import Account, AuditEntry, RateCardVersion
from kernel.instants import Month, to_micros

router = APIRouter()
AUDIT_PAGE = 50
# The actions the services write (a fixed list: a DISTINCT over the whole audit log per page view would not scale).
AUDIT_ACTIONS = (
    "account.create", "account.plan", "backend.create", "fanout.disable", "fanout.enable", "product.cancel",
    "product.purchase", "rate_card.set", "service.create", "service.update", "statement.adjustment",
    "statement.draft", "statement.finalize", "statement.regenerate", "token.create", "token.revoke",
    "user.create", "user.remove", "webhook.delivery.redeliver", "webhook.endpoint.create",
    "webhook.endpoint.disable", "webhook.endpoint.enable",
)  # fmt: skip
ACCOUNTS_PAGE = 50


@router.get("/accounts")
def accounts_page(
    page: PageDep,
    q: str | None = None,
    p: int = 1,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    """Every account (admin creates them and sets paid or trial; finance reads)."""
    require(page.principal, Action.READ_USAGE, None)
    query = select(Account).order_by(Account.id)
    count_query = select(func.count()).select_from(Account)
    if q:
        pattern = f"%{q.strip().lower()}%"
        cond = func.lower(Account.id).like(pattern) | func.lower(Account.name).like(pattern)
        query, count_query = query.where(cond), count_query.where(cond)
    count = page.db.execute(count_query).scalar_one()
    pages = max(1, -(-count // ACCOUNTS_PAGE))
    p = min(max(1, p), pages)
    rows = list(page.db.scalars(query.limit(ACCOUNTS_PAGE).offset((p - 1) * ACCOUNTS_PAGE)))
    return page.render(
        "accounts.html",
        status_code=status_code,
        title="Accounts",
        accounts=rows,
        q=q or "",
        pager={"page": p, "pages": pages, "count": count},
        page_url=lambda n: f"{PREFIX}/accounts?" + urlencode({"q": q or "", "p": n}),
        can_manage=page.may(Action.MANAGE_ACCOUNTS, None),
        errors=errors or {},
        values=values or {},
    )


@router.post("/accounts")
def create_account(page: PageDep, form: FormDep) -> Response:
    require(page.principal, Action.MANAGE_ACCOUNTS, None)
    name, plan = form.get("name", "").strip(), form.get("plan", "trial")
    account_id = form.get("account_id", "").strip() or None
    errors = {}
    if not name:
        errors["name"] = "Give the account a name."
    if plan not in accounts.PLANS:
        errors["plan"] = "Choose paid or trial."
    if not errors:
        try:
            accounts.create_account(
                page.db, page.principal, name=name, plan=plan, currency="USD", account_id=account_id, now=page.now
            )
            return redirect(f"{PREFIX}/accounts")
        except BillingError as error:
            page.db.rollback()
            errors["account_id"] = str(error)
    return accounts_page(page, errors=errors, values=form, status_code=400)


@router.post("/accounts/{account_id}/plan")
def set_plan(page: PageDep, form: FormDep, account_id: str) -> Response:
    require(page.principal, Action.MANAGE_ACCOUNTS, account_id)
    plan = form.get("plan", "")
    if plan in accounts.PLANS:
        accounts.set_plan(page.db, page.principal, account_id, plan, page.now)
    return redirect(f"{PREFIX}/accounts")


def _people(
    page: Page,
    account_id: str | None,
    new: str | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    """The people page; ``new`` ("token" or "link") after issuing one shows it this once."""
    require(page.principal, Action.MANAGE_PEOPLE, account_id)
    if account_id is not None:
        accounts.get_account(page.db, account_id)
    revealed = _take_reveal(page) if new in NEW_KINDS else None
    users = accounts.list_users(page.db, account_id)
    tokens = [t for t in accounts.list_tokens(page.db, account_id) if t.kind == "user"]
    by_user = {u.id: u.email for u in users}
    roles = sorted(PLATFORM_ROLES) if account_id is None else sorted(ACCOUNT_ROLES)
    base = f"{PREFIX}/platform/people" if account_id is None else f"{PREFIX}/accounts/{account_id}/people"
    return page.render(
        "people.html",
        status_code=status_code,
        title="People and tokens",
        account_id=account_id,
        users=users,
        tokens=tokens,
        by_user=by_user,
        roles=roles,
        base=base,
        new=new if new in NEW_KINDS else None,
        revealed=revealed,
        errors=errors or {},
    )


NEW_KINDS = ("token", "link")


def _take_reveal(page: Page) -> dict[str, str] | None:
    return sessions.take_reveal(page.db, page.request.cookies.get(COOKIE, ""), page.now)


def _people_path(account_id: str | None) -> str:
    return f"{PREFIX}/platform/people" if account_id is None else f"{PREFIX}/accounts/{account_id}/people"


@router.get("/platform/people")
def platform_people(page: PageDep, new: str | None = None) -> Response:
    return _people(page, None, new)


@router.get("/accounts/{account_id}/people")
def account_people(page: PageDep, account_id: str, new: str | None = None) -> Response:
    return _people(page, account_id, new)


def _account_of(account: str) -> str | None:
    return None if account == "platform" else account


@router.post("/{scope}/people/users")
@router.post("/accounts/{scope}/people/users")
def add_person(page: PageDep, form: FormDep, scope: str) -> Response:
    account_id = _account_of(scope)
    require(page.principal, Action.MANAGE_PEOPLE, account_id)
    email, role = form.get("email", "").strip(), form.get("role", "")
    if "@" not in email:
        return _people(page, account_id, errors={"email": "Enter the person's email address."}, status_code=400)
    try:
        accounts.create_user(page.db, page.principal, account_id=account_id, email=email, role=role, now=page.now)
    except BillingError as error:
        page.db.rollback()
        return _people(page, account_id, errors={"email": str(error)}, status_code=400)
    return redirect(f"{PREFIX}/platform/people" if account_id is None else f"{PREFIX}/accounts/{account_id}/people")


def _reveal_then_show(page: Page, account_id: str | None, kind: str, values: dict[str, str]) -> Response:
    """POST-redirect-GET: the secret is kept sealed on the session's row for the one view the
    redirect leads to, so reloading that page shows it no more and issues nothing."""
    sessions.keep_reveal(page.db, page.request.cookies.get(COOKIE, ""), values, page.now)
    page.db.commit()
    return redirect(f"{_people_path(account_id)}?new={kind}")


def _link_url(page: Page, token_id: str) -> str:
    link = sessions.create_link(page.db, token_id, page.now)
    return f"{str(page.request.base_url).rstrip('/')}{PREFIX}/sign-in/link?secret={link}"


@router.post("/users/{user_id}/tokens")
def new_token(page: PageDep, form: FormDep, user_id: str) -> Response:
    """Issue a token with a one-time sign-in link; the page the answer leads to shows both once."""
    user = accounts.get_user(page.db, user_id)
    require_on(page.principal, Action.MANAGE_PEOPLE, user.account_id, f"no user {user_id!r}")
    issued = accounts.create_user_token(page.db, page.principal, user, form.get("name") or "console", page.now)
    values = {"email": user.email, "secret": issued.secret, "link": _link_url(page, issued.row.id)}
    return _reveal_then_show(page, user.account_id, "token", values)


@router.post("/tokens/{token_id}/link")
def new_link(page: PageDep, token_id: str) -> Response:
    """A new one-time sign-in link for a person's token (when its secret was not kept), shown once."""
    token = accounts.get_token(page.db, token_id)
    require_on(page.principal, Action.MANAGE_PEOPLE, token.account_id, f"no token {token_id!r}")
    if token.kind != "user" or token.revoked_at is not None or token.user_id is None:
        return _people(
            page, token.account_id, errors={"link": "That token is revoked: issue a new one."}, status_code=400
        )
    user = accounts.get_user(page.db, token.user_id)
    return _reveal_then_show(page, token.account_id, "link", {"email": user.email, "link": _link_url(page, token.id)})


@router.post("/tokens/{token_id}/revoke")
def revoke(page: PageDep, token_id: str) -> Response:
    token = accounts.get_token(page.db, token_id)
    require_on(page.principal, Action.MANAGE_PEOPLE, token.account_id, f"no token {token_id!r}")
    accounts.revoke_token(page.db, page.principal, token, page.now)
    return redirect(_people_path(token.account_id))


@router.post("/users/{user_id}/remove")
def remove(page: PageDep, user_id: str) -> Response:
    user = accounts.get_user(page.db, user_id)
    require_on(page.principal, Action.MANAGE_PEOPLE, user.account_id, f"no user {user_id!r}")
    if page.principal.user_id == user.id:
        raise PermissionDenied("you cannot remove yourself; ask another admin or superuser")
    accounts.remove_user(page.db, page.principal, user, page.now)
    return redirect(
        f"{PREFIX}/platform/people" if user.account_id is None else f"{PREFIX}/accounts/{user.account_id}/people"
    )


def _day(text: str | None) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC) if text else None
    except ValueError:
        return None


@router.get("/audit")
def audit(
    page: PageDep,
    account: str | None = None,
    action: str | None = None,
    since: str | None = None,
    until: str | None = None,
    p: int = 1,
) -> Response:
    """The audit log, newest first: filter by account, action and date (platform: all; superuser: own)."""
    own = page.principal.account_id
    account = own or account or None
    require(page.principal, Action.READ_AUDIT, account)
    query = select(AuditEntry)
    where = []
    if account:
        where.append(AuditEntry.account_id == account)
    if action:
        where.append(AuditEntry.action == action)
    start, end = _day(since), _day(until)
    if start:
        where.append(AuditEntry.at >= start)
    if end:
        where.append(AuditEntry.at < end + timedelta(days=1))
    # No total count: the log only grows; one row more than a page tells whether a next page exists.
    p = max(1, p)
    found = list(
        page.db.scalars(
            query.where(*where).order_by(AuditEntry.id.desc()).limit(AUDIT_PAGE + 1).offset((p - 1) * AUDIT_PAGE)
        )
    )
    entries, has_next = found[:AUDIT_PAGE], len(found) > AUDIT_PAGE
    actions = sorted({*AUDIT_ACTIONS, *([action] if action else [])})
    params = {
        "account": "" if own else account or "",
        "action": action or "",
        "since": since or "",
        "until": until or "",
    }
    return page.render(
        "audit.html",
        title="Audit log",
        entries=entries,
        actions=actions,
        account=account or "",
        action=action or "",
        since=since or "",
        until=until or "",
        own=own,
        page_number=p,
        has_next=has_next,
        page_url=lambda n: f"{PREFIX}/audit?" + urlencode({**params, "p": n}),
        dump=lambda value: "" if value is None else json.dumps(value, sort_keys=True),
    )


@router.get("/rate-cards")
def rate_cards(
    page: PageDep, errors: dict[str, str] | None = None, values: dict[str, str] | None = None, status_code: int = 200
) -> Response:
    """The default card and each account's overrides with their effective months (admin and finance)."""
    require(page.principal, Action.SET_RATES, None)
    month = Month.of(to_micros(page.now))
    default = rates.card_for(page.db, None, month)
    versions = list(
        page.db.scalars(
            select(RateCardVersion).order_by(
                RateCardVersion.account_id.is_(None).desc(), RateCardVersion.account_id, RateCardVersion.effective_month
            )
        )
    )
    return page.render(
        "rate_cards.html",
        status_code=status_code,
        title="Rate cards",
        default=default,
        versions=versions,
        month=str(month),
        default_json=json.dumps(default.card, indent=2),
        errors=errors or {},
        values=values or {},
        dump=lambda value: json.dumps(value, indent=2),
    )


@router.post("/rate-cards")
def set_rate_card(page: PageDep, form: FormDep) -> Response:
    account_id = form.get("account_id", "").strip() or None
    require(page.principal, Action.SET_RATES, account_id)
    errors: dict[str, str] = {}
    try:
        card = json.loads(form.get("card", ""))
    except json.JSONDecodeError as error:
        errors["card"] = f"The card is not valid JSON: {error.msg} (line {error.lineno})."
    try:
        effective = _parse(form.get("effective_month", ""))
    except BillingError:
        errors["effective_month"] = "Give the month as YYYY-MM."
    if not errors:
        try:
            rates.set_card(page.db, page.principal, account_id, card, effective, page.now)
            return redirect(f"{PREFIX}/rate-cards")
        except BillingError as error:
            page.db.rollback()
            errors["card"] = str(error)
    return rate_cards(page, errors=errors, values=form, status_code=400)
