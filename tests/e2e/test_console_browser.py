"""The console in headless Chromium against a running `fanmeter admin` and a real worker.

Each page visited is checked with axe-core (no serious or critical violation) and saved as a
screenshot at 1280 and 390 px under docs/screenshots/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from pypdf import PdfReader

from billing.domain.ledger import previous_month
from kernel.instants import Month, to_micros
from tests.e2e.console_browser import admin_service, check_page, chromium_path, send_events
from tests.stack import run_cli
from tests.strategies import close_event, delivered_event, open_event, published_event

NOW = datetime.now(UTC)
THIS_MONTH = Month.of(to_micros(NOW))
LAST_MONTH = previous_month(THIS_MONTH)


@dataclass
class Console:
    url: str
    admin: httpx.Client
    ingest: str
    admin_token: str
    tokens: dict[str, str] = field(default_factory=dict)  # "role@account" -> API token secret
    finance_link: str = ""


def _person(admin: httpx.Client, account: str, role: str) -> str:
    user = admin.post(f"/v1/accounts/{account}/users", json={"email": f"{role}@{account}.example", "role": role})
    assert user.status_code == 201, user.text
    token = admin.post(f"/v1/users/{user.json()['id']}/tokens", json={"name": "e2e"})
    return str(token.json()["token"])


def _usage_events(account: str, service: str, month: Month, tag: str, days: range, scale: int = 1) -> list[Any]:
    events = []
    for day in days:
        start = to_micros(datetime(month.year, month.month, day, 9, tzinfo=UTC))
        connection = f"{tag}-{day}"
        events += [
            open_event(start, account=account, service=service, connection=connection),
            close_event(
                start + (20 + day) * 60_000_000 * scale,
                2_000_000_000 * (1 + day % 7) * scale,
                account=account,
                service=service,
                connection=connection,
            ),
            published_event(start, 100 * day * scale, account=account, service=service),
            delivered_event(start, 300 * day * scale, account=account, service=service),
        ]
    return events


@pytest.fixture(scope="module")
def console(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    created = run_cli(stack_env, "token", "create", "--role", "admin", "--email", "root@console.example")
    assert created.returncode == 0, created.stderr
    admin_token = created.stdout.strip().splitlines()[-1]
    with admin_service(stack_env, tmp_path_factory.mktemp("console") / "admin.log") as url:
        admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=30)
        for account, name, plan in (("acme", "Acme Corp", "paid"), ("beta", "Beta Labs", "trial")):
            assert admin.post("/v1/accounts", json={"id": account, "name": name, "plan": plan}).status_code == 201
        ingest = admin.post("/v1/ingest-tokens", json={"name": "console e2e"}).json()["token"]
        world = Console(url, admin, ingest, admin_token)
        for account, role in (
            ("acme", "engineer"),
            ("acme", "billing"),
            ("acme", "superuser"),
            ("beta", "superuser"),
            ("beta", "engineer"),
        ):
            world.tokens[f"{role}@{account}"] = _person(admin, account, role)
        linked = run_cli(
            stack_env, "token", "create", "--role", "finance", "--email", "fin@console.example", "--login-link"
        )
        assert linked.returncode == 0, linked.stderr
        link = re.search(r"sign-in link \(once, 15 minutes\): (\S+)", linked.stdout)
        assert link, linked.stdout
        world.finance_link = re.sub(r"^http://[^/]+", url, link.group(1))
        world.tokens["finance"] = linked.stdout.strip().splitlines()[-1]
        send_events(url, ingest, _usage_events("acme", "svc-acme-web", LAST_MONTH, "last", range(1, 28)))
        yield world
        admin.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    opened = context.new_page()
    yield opened
    context.close()


def sign_in(page: Any, console: Console, key: str) -> None:
    page.goto(f"{console.url}/console/sign-in")
    page.get_by_label("API token").fill(console.tokens[key])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert "/sign-in" not in page.url, page.content()[:500]


def test_finance_finds_an_account_adds_a_credit_finalizes_and_downloads_the_pdf(page: Any, console: Console) -> None:
    page.goto(console.finance_link)
    check_page(page, "sign-in-link")
    page.get_by_role("button", name="Continue to the console").click()
    page.wait_for_url(re.compile(r"/console/statements"))
    page.get_by_label("Month", exact=True).select_option(str(LAST_MONTH))
    page.get_by_label("Account", exact=True).fill("acme")
    page.get_by_role("button", name="Show").click()
    check_page(page, "statements")
    page.get_by_role("link", name="Acme Corp").click()
    page.get_by_role("button", name="Build draft").click()
    assert page.get_by_text("The draft was rebuilt from current usage.").is_visible()

    page.get_by_label("Credit (takes money off)").check()
    page.get_by_label("Amount (USD)").fill("12.345")
    page.get_by_role("button", name="Add", exact=True).click()
    assert page.locator("#f-amount-error").is_visible()  # an amount past the cent, shown beside its field
    check_page(page, "statement-field-error")
    page.get_by_label("Amount (USD)").fill("5.00")
    page.get_by_label("Reason").fill("Outage on the 3rd")
    page.get_by_role("button", name="Add", exact=True).click()
    assert page.get_by_text("Outage on the 3rd").first.is_visible()
    check_page(page, "statement-draft")

    page.get_by_role("link", name="Finalize…").click()
    number = page.locator("dd strong").nth(1).inner_text()
    total = page.locator("dd strong").nth(0).inner_text()
    assert re.fullmatch(r"FM-\d{4}-\d{6}", number)  # the yearly sequence, as the API's finalize takes it
    check_page(page, "finalize-confirm")
    page.get_by_role("button", name=f"Finalize as {number}").click()
    assert page.get_by_text("This statement is finalized and never changes.").is_visible()
    assert page.get_by_role("button", name="Regenerate draft").count() == 0
    assert page.get_by_role("button", name="Add", exact=True).count() == 0
    assert len(page.locator("dd code").inner_text()) == 64  # the content hash
    check_page(page, "statement-finalized")

    with page.expect_download() as downloaded:
        page.get_by_role("link", name="Download PDF").click()
    text = "".join(p.extract_text() for p in PdfReader(BytesIO(Path(downloaded.value.path()).read_bytes())).pages)
    assert number in text
    assert total.startswith("$")  # usage in dollars, less the credit
    assert f"{total.removeprefix('$').replace(',', '')} USD" in text.replace(",", "")

    # a correction after finalization is a credit note, with a number of its own
    page.get_by_label("Credit amount (USD)").fill("1.00")
    page.get_by_label("Credit reason").fill("Goodwill for the outage")
    page.get_by_role("button", name="Issue credit note").click()
    assert page.get_by_text("The credit note was issued.").is_visible()
    credit = page.get_by_role("row", name=re.compile("Goodwill for the outage")).inner_text()
    assert re.search(r"CN-\d{4}-\d{6}", credit) and "$1.00" in credit
    assert page.get_by_text("Remaining").is_visible()
    check_page(page, "statement-credit-note")


def test_a_trial_superuser_sees_why_then_purchases_fanout_once_paid(page: Any, console: Console) -> None:
    superuser = httpx.Client(
        base_url=console.url, headers={"Authorization": f"Bearer {console.tokens['superuser@beta']}"}
    )
    for name, kind in (("edge-app", "compute"), ("legacy-site", "delivery")):
        assert superuser.post("/v1/accounts/beta/services", json={"name": name, "type": kind}).status_code == 201
    sign_in(page, console, "superuser@beta")
    page.goto(f"{console.url}/console/accounts/beta/products")
    assert page.get_by_role("button", name="Purchase Fanout").is_disabled()
    assert page.get_by_text("Fanout requires a paid account").is_visible()
    before = page.get_by_role("row", name=re.compile("legacy-site"))  # every rule, before buying anything
    assert before.get_by_text("has not been purchased").is_visible()
    assert before.get_by_text("service chaining").is_visible()
    check_page(page, "products-trial")

    assert console.admin.put("/v1/accounts/beta/plan", json={"plan": "paid"}).status_code == 200
    page.reload()
    assert page.get_by_text("Fanout requires Compute").is_visible()
    page.get_by_role("button", name="Purchase Compute").click()
    page.get_by_role("button", name="Purchase Fanout").click()
    assert page.get_by_text("Purchased.").is_visible()
    row = page.get_by_role("row", name=re.compile("edge-app"))
    row.get_by_role("button", name="Enable Fanout").click()
    assert page.get_by_text("Fanout is on for the service.").is_visible()
    delivery = page.get_by_role("row", name=re.compile("legacy-site"))
    assert delivery.get_by_role("button", name="Enable Fanout").is_disabled()
    assert delivery.get_by_text("only available for Compute services").is_visible()
    assert delivery.get_by_text("service chaining").is_visible()
    check_page(page, "products-paid")
    page.goto(f"{console.url}/console/accounts/beta/services")
    check_page(page, "services")
    superuser.close()


def test_an_engineer_sees_usage_rise_after_events_are_ingested(page: Any, console: Console) -> None:
    sign_in(page, console, "engineer@acme")
    page.goto(f"{console.url}/console/accounts/acme/usage")
    empty = page.get_by_text("No usage yet").is_visible()
    check_page(page, "usage-empty" if empty else "usage-before")
    before = _minutes(page)
    today = NOW.day
    send_events(
        console.url, console.ingest, _usage_events("acme", "svc-acme-web", THIS_MONTH, "now", range(1, today + 1))
    )
    page.reload()
    after = _minutes(page)
    assert after > before
    assert page.locator("figure.chart svg rect.bar").count() >= 4 * THIS_MONTH.last_day.day
    assert page.get_by_text("Estimate for month end").first.is_visible()
    check_page(page, "usage")
    with page.expect_download() as downloaded:
        page.get_by_role("link", name="Download CSV").click()
    assert Path(downloaded.value.path()).read_text().startswith("day,service_id,connection_minutes")


def _minutes(page: Any) -> int:
    figure = page.locator(".total", has_text="Connection minutes").locator("dd").first
    return int(figure.inner_text().replace(",", "")) if figure.count() else 0


def test_billing_cannot_reach_the_products_page(page: Any, console: Console) -> None:
    sign_in(page, console, "billing@acme")
    assert page.get_by_role("navigation", name="Main").get_by_role("link", name="Products").count() == 0
    answer = page.goto(f"{console.url}/console/accounts/acme/products")
    assert answer.status == 403
    assert page.get_by_role("heading", name="Not allowed").is_visible()
    page.goto(f"{console.url}/console/accounts/acme/statements")
    check_page(page, "account-statements")


def test_a_person_of_one_account_gets_404_for_another_accounts_statement(page: Any, console: Console) -> None:
    sign_in(page, console, "superuser@beta")
    answer = page.goto(f"{console.url}/console/accounts/acme/statements/{LAST_MONTH}")
    assert answer.status == 404
    assert page.get_by_role("heading", name="Not found").is_visible()
    check_page(page, "not-found")


def test_a_form_posted_without_its_csrf_token_is_refused(page: Any, console: Console) -> None:
    sign_in(page, console, "finance")
    answer = page.request.post(
        f"{console.url}/console/accounts/acme/statements/{THIS_MONTH}/adjustments",
        form={"kind": "credit", "amount": "1.00", "reason": "forged"},
    )
    assert answer.status == 403
    assert "Form refused" in answer.text()
    forged = page.request.post(
        f"{console.url}/console/accounts/acme/statements/{THIS_MONTH}/adjustments",
        form={"kind": "credit", "amount": "1.00", "reason": "forged", "csrf_token": "guess"},
    )
    assert forged.status == 403
    assert "forged" not in console.admin.get(f"/v1/accounts/acme/statements/{THIS_MONTH}/adjustments").text


def test_signing_out_ends_the_session(page: Any, console: Console) -> None:
    sign_in(page, console, "finance")
    cookie = next(c for c in page.context.cookies() if c["name"] == "fm_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/console/sign-in"))
    check_page(page, "sign-in")
    page.context.add_cookies([cookie])  # the old cookie, replayed, is worth nothing
    page.goto(f"{console.url}/console/statements")
    assert "/console/sign-in" in page.url


def test_revoking_the_token_ends_its_session(page: Any, console: Console) -> None:
    key = "engineer@beta"
    sign_in(page, console, key)
    token_id = next(t["id"] for t in console.admin.get("/v1/accounts/beta/tokens").json() if t["user_id"])
    for token in console.admin.get("/v1/accounts/beta/tokens").json():
        if token["user_id"] and token["revoked_at"] is None and "engineer" in _email(console, token["user_id"]):
            token_id = token["id"]
    assert console.admin.delete(f"/v1/tokens/{token_id}").status_code == 200
    page.goto(f"{console.url}/console/accounts/beta/services")
    assert "/console/sign-in" in page.url


def _email(console: Console, user_id: str) -> str:
    users = console.admin.get("/v1/accounts/beta/users").json()
    return next((u["email"] for u in users if u["id"] == user_id), "")


def test_the_platform_pages_pass_the_accessibility_check(page: Any, console: Console) -> None:
    sign_in(page, console, "finance")
    for path, name in (
        ("/console/audit", "audit"),
        ("/console/rate-cards", "rate-cards"),
        ("/console/accounts", "accounts-finance"),
    ):
        page.goto(console.url + path)
        check_page(page, name)
    page.goto(f"{console.url}/console/accounts/acme/statements/{LAST_MONTH}")
    check_page(page, "statement")


def test_an_admin_creates_an_account_and_issues_a_token_shown_once(page: Any, console: Console) -> None:
    console.tokens["admin"] = console.admin_token
    sign_in(page, console, "admin")
    page.goto(f"{console.url}/console/accounts")
    page.get_by_role("button", name="Create account").click()
    assert page.locator("#f-name-error").is_visible()  # a name is required, said beside the field
    page.get_by_label("Name").fill("Gamma Works")
    page.get_by_label("Id (optional)").fill("gamma")
    page.get_by_label("Paid").check()
    page.get_by_role("button", name="Create account").click()
    assert page.get_by_role("row", name=re.compile("Gamma Works")).is_visible()
    check_page(page, "accounts")
    page.goto(f"{console.url}/console/accounts/gamma/people")
    page.get_by_label("Email").fill("owner@gamma.example")
    page.get_by_label("Role").select_option("superuser")
    page.get_by_role("button", name="Add person").click()
    page.get_by_role("button", name="New token for owner@gamma.example").click()
    secret = page.locator(".secret code").first.inner_text()
    assert secret.startswith("fm_")
    assert page.url.endswith("/console/accounts/gamma/people?new=token")  # the POST answered with a redirect
    check_page(page, "people-new-token")
    page.reload()  # a reload is a GET: it issues nothing and shows the secret no more
    assert secret not in page.content()
    assert page.get_by_text("was shown once").is_visible()
    assert page.get_by_role("button", name=re.compile("^Revoke")).count() == 1
    page.goto(f"{console.url}/console/accounts/gamma/people")
    assert secret not in page.content()  # shown once
    assert page.get_by_text(f"{secret[:10]}…").is_visible()  # only its first characters are listed
    check_page(page, "people")


def test_a_usage_alert_crossed_shows_as_a_banner_on_the_usage_page(
    page: Any, console: Console, stack_env: dict[str, str]
) -> None:
    superuser = {"Authorization": f"Bearer {console.tokens['superuser@beta']}"}
    made = console.admin.post(
        "/v1/accounts/beta/usage-alerts",
        json={"measure": "messages", "limit": "1000", "name": "First thousand messages"},
        headers=superuser,
    )
    assert made.status_code == 201, made.text
    start = to_micros(NOW) - 3_600_000_000
    send_events(
        console.url,
        console.ingest,
        [
            published_event(start, 600, account="beta", service="svc-beta-api"),
            delivered_event(start, 900, account="beta", service="svc-beta-api"),
        ],
    )
    checked = run_cli(stack_env, "alerts", "check")
    assert checked.returncode == 0 and ", 1 fired" in checked.stdout, checked.stdout + checked.stderr

    sign_in(page, console, "superuser@beta")
    page.goto(f"{console.url}/console/accounts/beta/usage")
    banner = page.locator(".notice.warn", has_text="Usage alert")
    assert banner.count() == 1 and banner.is_visible()
    assert "Messages reached 1,500" in banner.inner_text() and "First thousand messages" in banner.inner_text()
    assert page.get_by_role("cell", name="Crossed").is_visible()
    check_page(page, "usage-alert")


def test_a_superuser_registers_a_webhook_sees_its_secret_once_and_reads_the_delivery_log(
    page: Any, console: Console, stack_env: dict[str, str]
) -> None:
    sign_in(page, console, "superuser@acme")
    page.get_by_role("link", name="Webhooks").click()
    page.get_by_label("URL").fill("http://127.0.0.1:9/hooks")
    page.get_by_role("button", name="Register").click()
    assert page.locator("#f-url-error").is_visible()  # loopback is refused, said beside the field
    check_page(page, "webhooks-field-error")
    page.get_by_label("URL").fill("https://93.184.215.14/hooks")  # public; unreachable from this machine
    page.get_by_label("Description").fill("Acme ERP")
    page.get_by_role("button", name="Register").click()
    secret = page.locator(".secret code").first.inner_text()
    assert secret.startswith("whsec_") and page.url.endswith("/console/accounts/acme/webhooks?new=endpoint")
    check_page(page, "webhooks-new-endpoint")
    page.reload()
    assert secret not in page.content() and page.get_by_text("was shown once").is_visible()
    superuser = {"Authorization": f"Bearer {console.tokens['superuser@acme']}"}
    for product in ("compute", "fanout"):  # Fanout enabled: an event for the endpoint
        assert console.admin.put(f"/v1/accounts/acme/products/{product}", headers=superuser).status_code == 200
    delivered = run_cli(stack_env, "webhooks", "deliver")  # one attempt: no route out of this machine
    assert delivered.returncode == 0, delivered.stderr

    page.get_by_role("link", name="https://93.184.215.14/hooks").click()
    row = page.get_by_role("row", name=re.compile("Fanout enabled"))
    assert row.is_visible() and "pending" in row.inner_text() and "no answer" in row.inner_text()
    check_page(page, "webhook-endpoint")
    row.get_by_role("button", name=re.compile("^Redeliver")).click()
    assert page.get_by_text("Queued again").is_visible()
    page.get_by_role("button", name="Disable").click()
    assert page.get_by_text("Disabled: nothing is sent").is_visible()
