"""The console over HTTP: every page x every role x own/other account, sign-in and its ends, CSRF, query counts.

The expected answers are written from DESIGN.md's role table (as ``test_role_matrix`` does for
the API), so a page that checks the wrong action fails here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select, text
from sqlalchemy.orm import Session

from billing import accounts
from billing.console import filters, sessions
from billing.orm import ApiToken, Backend, Service
from tests.admin_world import OTHER, OWN, SEEDER, World, build_world

PLATFORM = ("admin", "finance")
ACCOUNT_ROLES = ("superuser", "engineer", "billing", "user")
ALL, OWN_ONLY = "all", "own"
MONTH = "2026-02"  # closed at the world's clock (2026-03-15)

# page -> who may open it, from DESIGN.md's table ("{a}": the account acted on).
ACCOUNT_PAGES = {
    "/console/accounts/{a}/statements": {"admin": ALL, "finance": ALL, "superuser": OWN_ONLY, "billing": OWN_ONLY},
    f"/console/accounts/{{a}}/statements/{MONTH}": {
        "admin": ALL, "finance": ALL, "superuser": OWN_ONLY, "billing": OWN_ONLY,
    },
    f"/console/accounts/{{a}}/statements/{MONTH}/download.pdf": {
        "admin": ALL, "finance": ALL, "superuser": OWN_ONLY, "billing": OWN_ONLY,
    },
    f"/console/accounts/{{a}}/statements/{MONTH}/download.csv": {
        "admin": ALL, "finance": ALL, "superuser": OWN_ONLY, "billing": OWN_ONLY,
    },
    f"/console/accounts/{{a}}/statements/{MONTH}/finalize": {"finance": ALL},
    "/console/accounts/{a}/usage": {
        "admin": ALL, "finance": ALL, "superuser": OWN_ONLY, "engineer": OWN_ONLY, "billing": OWN_ONLY,
    },
    "/console/accounts/{a}/usage.csv": {
        "admin": ALL, "finance": ALL, "superuser": OWN_ONLY, "engineer": OWN_ONLY, "billing": OWN_ONLY,
    },
    "/console/accounts/{a}/services": {
        "admin": ALL, "superuser": OWN_ONLY, "engineer": OWN_ONLY, "billing": OWN_ONLY, "user": OWN_ONLY,
    },
    "/console/accounts/{a}/products": {"superuser": OWN_ONLY},
    "/console/accounts/{a}/people": {"admin": ALL, "superuser": OWN_ONLY},
    "/console/accounts/{a}/webhooks": {"superuser": OWN_ONLY},
}  # fmt: skip
PLATFORM_PAGES = {
    "/console/statements": {"admin": ALL, "finance": ALL},
    "/console/accounts": {"admin": ALL, "finance": ALL},
    "/console/rate-cards": {"admin": ALL, "finance": ALL},
    "/console/platform/people": {"admin": ALL},
    "/console/audit": {"admin": ALL, "finance": ALL, "superuser": OWN_ONLY},
    "/console/platform/webhooks": {"admin": ALL, "finance": ALL},
}


@pytest.fixture
def world(engine: Engine) -> Iterator[World]:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM console_session"))
    world = build_world(engine)
    with world.client:
        yield world


def sign_in(client: TestClient, secret: str) -> None:
    client.cookies.clear()
    form_token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/console/sign-in").text)
    assert form_token
    answer = client.post(
        "/console/sign-in", data={"csrf_token": form_token.group(1), "token": secret}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text


def form_token(client: TestClient, path: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert found, path
    return found.group(1)


def expected(allowed: dict[str, str], role: str, account: str | None) -> int:
    if role in ACCOUNT_ROLES and account == OTHER:
        return 404
    scope = allowed.get(role)
    if scope == ALL or (scope == OWN_ONLY and role in ACCOUNT_ROLES):
        return 200
    return 403


CASES = [
    (path, role, account)
    for path in ACCOUNT_PAGES
    for role in (*PLATFORM, *ACCOUNT_ROLES)
    for account in (OWN, OTHER)
    if not (role in PLATFORM and account == OTHER)
]


@pytest.mark.parametrize(("path", "role", "account"), CASES)
def test_each_account_page_answers_what_the_role_table_says(world: World, path: str, role: str, account: str) -> None:
    sign_in(world.client, world.tokens[role])
    answer = world.client.get(path.format(a=account), follow_redirects=False)
    assert answer.status_code == expected(ACCOUNT_PAGES[path], role, account), answer.text[:300]


@pytest.mark.parametrize("role", (*PLATFORM, *ACCOUNT_ROLES))
@pytest.mark.parametrize("path", PLATFORM_PAGES)
def test_each_platform_page_answers_what_the_role_table_says(world: World, path: str, role: str) -> None:
    sign_in(world.client, world.tokens[role])
    assert world.client.get(path, follow_redirects=False).status_code == expected(PLATFORM_PAGES[path], role, None)


def test_another_accounts_page_is_the_same_404_as_a_missing_one(world: World) -> None:
    sign_in(world.client, world.tokens["superuser"])
    other = world.client.get(f"/console/accounts/{OTHER}/statements/{MONTH}")
    missing = world.client.get(f"/console/accounts/acc_missing/statements/{MONTH}")
    assert (other.status_code, other.text) == (missing.status_code, missing.text)


def test_without_a_session_every_page_leads_to_sign_in(world: World) -> None:
    for path in (*ACCOUNT_PAGES, *PLATFORM_PAGES):
        answer = world.client.get(path.format(a=OWN), follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/console/sign-in?next=")


def test_the_session_cookie_is_httponly_strict_and_secure_behind_https(world: World) -> None:
    secure = TestClient(world.client.app, base_url="https://console.example")
    for client, is_secure in ((world.client, False), (secure, True)):
        token = form_token(client, "/console/sign-in")
        answer = client.post(
            "/console/sign-in", data={"csrf_token": token, "token": world.tokens["finance"]}, follow_redirects=False
        )
        cookie = next(v for k, v in answer.headers.multi_items() if k == "set-cookie" and v.startswith("fm_session"))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=28800" in cookie
        assert ("Secure" in cookie) is is_secure


def test_a_wrong_token_is_refused_on_the_sign_in_page(world: World) -> None:
    token = form_token(world.client, "/console/sign-in")
    answer = world.client.post("/console/sign-in", data={"csrf_token": token, "token": "fm_nope"})
    assert answer.status_code == 401
    assert "unknown, revoked" in answer.text


def _link(world: World, role: str) -> str:
    with Session(world.engine) as session:
        token_id = session.scalars(select(ApiToken.id).where(ApiToken.user_id == world.user_ids[role])).first()
        assert token_id
        secret = sessions.create_link(session, token_id, world.clock.now)
        session.commit()
    return secret


def _use_link(client: TestClient, secret: str) -> int:
    client.cookies.clear()
    token = form_token(client, f"/console/sign-in/link?secret={secret}")
    answer = client.post("/console/sign-in/link", data={"csrf_token": token, "secret": secret}, follow_redirects=False)
    return answer.status_code


def test_a_sign_in_link_works_once(world: World) -> None:
    secret = _link(world, "finance")
    assert _use_link(world.client, secret) == 303
    assert world.client.get("/console/statements").status_code == 200
    assert _use_link(world.client, secret) == 401


def test_a_sign_in_link_expires(world: World) -> None:
    secret = _link(world, "finance")
    world.clock.advance(sessions.LINK_LIFETIME + timedelta(seconds=1))
    assert _use_link(world.client, secret) == 401


def test_a_session_expires(world: World) -> None:
    sign_in(world.client, world.tokens["finance"])
    world.clock.advance(sessions.SESSION_LIFETIME + timedelta(seconds=1))
    assert world.client.get("/console/statements", follow_redirects=False).status_code == 303


def test_removing_the_person_ends_their_session(world: World) -> None:
    sign_in(world.client, world.tokens["billing"])
    with Session(world.engine, expire_on_commit=False) as session:
        accounts.remove_user(session, SEEDER, accounts.get_user(session, world.user_ids["billing"]), world.clock.now)
    assert world.client.get(f"/console/accounts/{OWN}/usage", follow_redirects=False).status_code == 303


def test_signing_out_ends_the_session_for_good(world: World) -> None:
    sign_in(world.client, world.tokens["finance"])
    cookie = world.client.cookies["fm_session"]
    token = form_token(world.client, "/console/statements")
    assert world.client.post("/console/sign-out", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    world.client.cookies.set("fm_session", cookie, path="/console")
    assert world.client.get("/console/statements", follow_redirects=False).status_code == 303


def test_a_form_without_its_token_changes_nothing(world: World) -> None:
    sign_in(world.client, world.tokens["finance"])
    path = f"/console/accounts/{OWN}/statements/{MONTH}/regenerate"
    assert world.client.post(path, data={}).status_code == 403
    assert world.client.post(path, data={"csrf_token": "guess"}).status_code == 403
    with world.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM statement")).scalar_one() == 0
    token = form_token(world.client, f"/console/accounts/{OWN}/statements/{MONTH}")
    assert world.client.post(path, data={"csrf_token": token}, follow_redirects=False).status_code == 303


def test_an_adjustment_without_a_reason_shows_the_error_beside_the_field(world: World) -> None:
    sign_in(world.client, world.tokens["finance"])
    base = f"/console/accounts/{OWN}/statements/{MONTH}"
    token = form_token(world.client, base)
    answer = world.client.post(f"{base}/adjustments", data={"csrf_token": token, "amount": "abc", "reason": ""})
    assert answer.status_code == 400
    assert 'id="f-amount-error"' in answer.text and 'id="f-reason-error"' in answer.text
    assert 'aria-invalid="true"' in answer.text


def _queries(engine: Engine, client: TestClient, path: str) -> int:
    """Queries of one request of ``path``, after a first one (which may fill the month's cached totals)."""
    client.get(path)
    count = 0

    def count_one(*_args: object) -> None:
        nonlocal count
        count += 1

    event.listen(engine, "before_cursor_execute", count_one)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", count_one)
    return count


def _add_accounts(world: World, n: int, start: int) -> None:
    with Session(world.engine) as session:
        for i in range(start, start + n):
            accounts.create_account(
                session,
                SEEDER,
                name=f"Extra {i}",
                plan="paid",
                currency="USD",
                account_id=f"acc_x{i:04d}",
                now=world.clock.now,
            )


def test_the_statements_page_issues_no_query_per_row(world: World) -> None:
    sign_in(world.client, world.tokens["finance"])
    _add_accounts(world, 3, 0)
    few = _queries(world.engine, world.client, f"/console/statements?month={MONTH}")
    _add_accounts(world, 40, 100)
    many = _queries(world.engine, world.client, f"/console/statements?month={MONTH}")
    assert many == few
    page = world.client.get(f"/console/statements?month={MONTH}").text
    assert page.count('href="/console/accounts/') == 25  # the first page of 45
    assert "Page 1 of 2" in page
    assert len(page.encode()) < 200_000


def test_sorting_by_total_puts_stored_totals_in_order_and_open_ones_last(world: World) -> None:
    sign_in(world.client, world.tokens["finance"])
    _add_accounts(world, 3, 0)
    token = form_token(world.client, f"/console/accounts/{OWN}/statements/{MONTH}")
    for account in (OWN, "acc_x0001"):
        path = f"/console/accounts/{account}/statements/{MONTH}"
        world.client.post(f"{path}/regenerate", data={"csrf_token": token})
    world.client.post(
        f"/console/accounts/acc_x0001/statements/{MONTH}/adjustments",
        data={"csrf_token": token, "kind": "charge", "amount": "9.00", "reason": "setup"},
    )
    page = world.client.get(f"/console/statements?month={MONTH}&sort=-total").text
    order = re.findall(r'href="/console/accounts/([^/]+)/statements/', page)
    assert order[:2] == ["acc_x0001", OWN]
    assert "$9.00" in page  # the month's draft total, summed


def test_search_and_status_filter_the_month(world: World) -> None:
    sign_in(world.client, world.tokens["finance"])
    _add_accounts(world, 5, 0)
    found = world.client.get(f"/console/statements?month={MONTH}&q=x0003").text
    assert "acc_x0003" in found and "acc_x0004" not in found
    drafts = world.client.get(f"/console/statements?month={MONTH}&status=draft").text
    assert "No statements match" in drafts


def test_the_audit_log_filters_by_account_action_and_date_and_pages(world: World) -> None:
    sign_in(world.client, world.tokens["finance"])
    _add_accounts(world, 55, 0)
    created = world.client.get("/console/audit?action=account.create").text
    assert created.count("<code>account/") == 50 and 'rel="next"' in created
    older = world.client.get("/console/audit?action=account.create&p=2").text
    assert older.count("<code>account/") == 7 and 'rel="next"' not in older  # 55 + the world's 2
    one = world.client.get(f"/console/audit?account={OTHER}&action=account.create").text
    assert one.count("<code>account/") == 1
    assert "No entries" in world.client.get("/console/audit?until=2026-03-14").text
    sign_in(world.client, world.tokens["superuser"])  # an account's superuser sees its own entries only
    own = world.client.get(f"/console/audit?account={OTHER}").text
    assert f"account/{OTHER}" not in own and f"account/{OWN}" in own


def test_a_superuser_gets_404_for_a_platform_persons_token_or_another_accounts_person(world: World) -> None:
    sign_in(world.client, world.tokens["superuser"])
    token = form_token(world.client, f"/console/accounts/{OWN}/people")
    with Session(world.engine) as session:
        admin_token = session.scalars(select(ApiToken.id).where(ApiToken.user_id == world.user_ids["admin"])).one()
    for path in (f"/console/tokens/{admin_token}/revoke", f"/console/users/{world.user_ids['admin']}/tokens"):
        assert world.client.post(path, data={"csrf_token": token}).status_code == 404
    with world.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM api_token WHERE revoked_at IS NOT NULL")).scalar_one() == 0


def _add_service(world: World, service_id: str, type_: str, **flags: bool) -> None:
    with Session(world.engine) as session:
        session.add(
            Service(
                id=service_id, account_id=OWN, name=service_id, type=type_, fanout_enabled=False,
                created_at=world.clock.now, **flags,
            )
        )  # fmt: skip
        session.commit()


def _reasons(page: str, service_id: str) -> list[str]:
    found = re.search(rf'id="why-svc-{service_id}">(.*?)</(?:p|div)>', page, re.S)
    assert found, service_id
    return [" ".join(r.split()) for r in re.findall(r"<li>(.*?)</li>", found.group(1), re.S)] or [found.group(1)]


def test_every_rule_that_blocks_a_control_is_shown_beside_it_before_trying(world: World) -> None:
    sign_in(world.client, world.tokens["superuser"])
    _add_service(world, "svc_delivery", "delivery")
    _add_service(world, "svc_flags", "compute", directors=True, shielding=True, ngwaf=True)
    _add_service(world, "svc_backends", "compute")
    with Session(world.engine) as session:
        for name, settings, tls in (
            ("extra", {"port": 443, "shield": "iad", "ssl_ciphers": "x"}, "verified"),
            ("selfsigned", {}, "untrusted"),
        ):
            session.add(
                Backend(
                    id=f"be_{name}", service_id="svc_backends", name=name, address="origin.example", use_tls=True,
                    override_host=None, settings=settings, tls_status=tls, created_at=world.clock.now,
                )
            )  # fmt: skip
        session.commit()
    base = f"/console/accounts/{OWN}/products"
    page = world.client.get(base).text  # a paid account without Compute or Fanout yet
    buying = re.search(r'id="why-buy-fanout">(.*?)</(?:p|div)>', page, re.S)
    assert buying and "Fanout requires Compute" in buying.group(1) and "paid account" not in buying.group(1)
    delivery = _reasons(page, "svc_delivery")
    assert len(delivery) == 2
    assert "not been purchased" in delivery[0]
    assert "only available for Compute services" in delivery[1] and "service chaining" in delivery[1]
    flags = _reasons(page, "svc_flags")
    assert len(flags) == 4 and "not been purchased" in flags[0]
    for reason, feature in zip(flags[1:], ("backend directors", "shielding", "the Next-Gen WAF"), strict=True):
        assert f"uses {feature}, which Fanout is not compatible with" in reason
    backends = _reasons(page, "svc_backends")
    assert len(backends) == 3
    assert "extra" in backends[1] and "shield and ssl_ciphers" in backends[1] and "port" not in backends[1]
    assert "selfsigned" in backends[2] and "not publicly trusted" in backends[2]

    token = form_token(world.client, base)
    for product in ("compute", "fanout"):
        world.client.post(f"{base}/{product}/purchase", data={"csrf_token": token})
    page = world.client.get(base).text  # once purchased, only the service's own rules are left
    assert 'id="why-buy-fanout"' not in page
    assert len(_reasons(page, "svc_delivery")) == 1 and "service chaining" in _reasons(page, "svc_delivery")[0]
    assert len(_reasons(page, "svc_flags")) == 3
    assert len(_reasons(page, "svc_backends")) == 2
    answer = world.client.post(f"{base}/services/svc_delivery/fanout", data={"csrf_token": token})
    assert answer.status_code == 400 and "service chaining" in answer.text  # and after trying


def test_a_trial_account_without_compute_lists_both_reasons_to_purchase(world: World) -> None:
    sign_in(world.client, world.other_tokens["superuser"])
    page = world.client.get(f"/console/accounts/{OTHER}/products").text
    buying = re.search(r'id="why-buy-fanout">(.*?)</div>', page, re.S)
    assert buying and "paid account" in buying.group(1) and "Fanout requires Compute" in buying.group(1)


def _tokens_of(world: World, user_id: str) -> int:
    with world.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM api_token WHERE user_id = :u"), {"u": user_id}).scalar_one())


def test_a_new_token_is_a_redirect_to_a_page_that_shows_it_once(world: World) -> None:
    sign_in(world.client, world.tokens["superuser"])
    people = f"/console/accounts/{OWN}/people"
    user_id = world.user_ids["engineer"]
    before = _tokens_of(world, user_id)
    token = form_token(world.client, people)
    answer = world.client.post(f"/console/users/{user_id}/tokens", data={"csrf_token": token}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == f"{people}?new=token"
    assert answer.text == ""  # the POST's answer holds no secret
    with world.engine.connect() as conn:  # the kept copy is sealed: the secret is not in the database
        kept = conn.execute(text("SELECT reveal FROM console_session WHERE reveal IS NOT NULL")).scalar_one()
    shown = world.client.get(answer.headers["location"]).text
    secret = re.search(r"<code>(fm_[^<…]+)</code>", shown)
    link = re.search(r"<code>(http[^<]+/sign-in/link\?secret=(fml_[^<]+))</code>", shown)
    assert secret and link and secret.group(1) not in kept and link.group(2) not in kept
    assert _tokens_of(world, user_id) == before + 1
    again = world.client.get(answer.headers["location"]).text  # a reload
    assert secret.group(1) not in again and link.group(2) not in again and "was shown once" in again
    assert _tokens_of(world, user_id) == before + 1  # and no second token
    assert world.client.get(people).status_code == 200
    sign_in(world.client, secret.group(1))  # the token shown works; so does its link, once
    assert _use_link(world.client, link.group(2)) == 303 and _use_link(world.client, link.group(2)) == 401


def test_a_new_sign_in_link_is_a_redirect_to_a_page_that_shows_it_once(world: World) -> None:
    sign_in(world.client, world.tokens["superuser"])
    people = f"/console/accounts/{OWN}/people"
    with Session(world.engine) as session:
        token_id = session.scalars(select(ApiToken.id).where(ApiToken.user_id == world.user_ids["billing"])).one()
    token = form_token(world.client, people)
    answer = world.client.post(f"/console/tokens/{token_id}/link", data={"csrf_token": token}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == f"{people}?new=link"
    shown = world.client.get(answer.headers["location"]).text
    link = re.search(r"/sign-in/link\?secret=(fml_[^<]+)</code>", shown)
    assert link and "New sign-in link for" in shown
    assert link.group(1) not in world.client.get(answer.headers["location"]).text
    with world.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM console_session WHERE kind = 'link'")).scalar_one() == 1
    assert _use_link(world.client, link.group(1)) == 303
    assert world.client.get(f"/console/accounts/{OWN}/usage").status_code == 200  # signed in as billing


def test_a_kept_token_is_shown_to_its_own_session_only(world: World) -> None:
    sign_in(world.client, world.tokens["superuser"])
    people = f"/console/accounts/{OWN}/people"
    token = form_token(world.client, people)
    world.client.post(f"/console/users/{world.user_ids['user']}/tokens", data={"csrf_token": token})
    # the redirect was followed: shown and gone. Kept again, another session of the same person sees nothing
    token = form_token(world.client, people)
    answer = world.client.post(
        f"/console/users/{world.user_ids['user']}/tokens", data={"csrf_token": token}, follow_redirects=False
    )
    sign_in(world.client, world.tokens["superuser"])
    assert 'class="secret"' not in world.client.get(answer.headers["location"]).text


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        (918, "minute", "918 minutes"),
        (1, "minute", "1 minute"),
        ("151200", "message", "151,200 messages"),
        ("222", "GB", "222 GB"),
        ("0.5", "GB", "0.5 GB"),
        (0, "message", "0 messages"),
        (12, "", "12"),
    ],
)
def test_quantities_are_written_with_a_readable_unit(value: int | str, unit: str, shown: str) -> None:
    assert filters.quantity(value, unit) == shown


def test_sorting_by_total_pages_through_stored_totals_then_open_ones_in_every_filter(world: World) -> None:
    sign_in(world.client, world.tokens["finance"])
    _add_accounts(world, 30, 0)
    token = form_token(world.client, f"/console/accounts/{OWN}/statements/{MONTH}")
    charged = {f"acc_x{i:04d}": amount for i, amount in ((3, "5.00"), (7, "9.00"), (11, "5.00"), (20, "1.00"))}
    for account, amount in charged.items():
        path = f"/console/accounts/{account}/statements/{MONTH}"
        world.client.post(f"{path}/regenerate", data={"csrf_token": token})
        world.client.post(
            f"{path}/adjustments", data={"csrf_token": token, "kind": "charge", "amount": amount, "reason": "setup"}
        )

    def order(query: str) -> list[str]:
        found: list[str] = []
        for p in (1, 2):
            page = world.client.get(f"/console/statements?month={MONTH}&{query}&p={p}").text
            found += [a for a in re.findall(r'href="/console/accounts/([^/]+)/statements/', page) if a not in found]
        return found

    every = sorted([OWN, OTHER, *(f"acc_x{i:04d}" for i in range(30))])
    opened = [a for a in every if a not in charged]
    ascending = ["acc_x0020", "acc_x0003", "acc_x0011", "acc_x0007"]  # ties by account
    descending = ["acc_x0007", "acc_x0003", "acc_x0011", "acc_x0020"]
    assert order("sort=total") == ascending + opened
    assert order("sort=-total") == descending + opened
    assert order("sort=-total&status=draft") == descending
    assert order("sort=total&status=open") == opened
    assert order("sort=-total&q=x001") == ["acc_x0011", *(a for a in opened if "x001" in a)]
    page = world.client.get(f"/console/statements?month={MONTH}&sort=-total&status=draft").text
    assert "4 in all" in page
