"""`/docs` and `/redoc` of a running `fanmeter admin`, rendered in headless Chromium with no request leaving it.

Every request the pages make is intercepted: one to the service's own origin goes on, any other is
aborted and recorded, so the test passes only where the pages need nothing from the internet.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.stack import running_admin

CHROMIUM = "/usr/bin/chromium"
TITLE = "fanmeter admin"


@pytest.fixture(scope="module")
def admin_url(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_admin(stack_env, tmp_path_factory.mktemp("docs") / "admin.log") as admin:
        yield admin.url


def _chromium() -> str:
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        pytest.fail("the browser tests need Chromium: run 'apt-get install chromium' (as root)", pytrace=False)
    return CHROMIUM if os.path.exists(CHROMIUM) else str(shutil.which("chromium"))


def _render(url: str, path: str, ready: str) -> tuple[str, list[str], list[str], list[str]]:
    """Open ``path`` and wait for ``ready``; return its text, the requests made, those refused, page errors."""
    from playwright.sync_api import ConsoleMessage, Route, sync_playwright

    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    requested: list[str] = []
    refused: list[str] = []
    errors: list[str] = []

    def route(r: Route) -> None:
        requested.append(r.request.url)
        if r.request.url.startswith(origin + "/"):
            r.continue_()
        else:
            refused.append(r.request.url)
            r.abort()

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), headless=True)
        try:
            context = browser.new_context()
            context.route("**/*", route)
            page = context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", console)
            page.goto(f"{url}{path}", wait_until="networkidle")
            page.wait_for_selector(ready, timeout=30_000)
            text = page.inner_text("body")
        finally:
            browser.close()
    return text, requested, refused, errors


@pytest.mark.parametrize(
    ("path", "ready", "script"),
    [
        ("/docs", ".swagger-ui .opblock", "swagger-ui/swagger-ui-bundle.js"),
        ("/redoc", ".api-content h1", "redoc/redoc.standalone.js"),
    ],
    ids=["swagger-ui", "redoc"],
)
def test_the_page_renders_the_api_from_the_service_s_own_assets(
    admin_url: str, path: str, ready: str, script: str
) -> None:
    text, requested, refused, errors = _render(admin_url, path, ready)

    assert refused == [] and errors == []
    assert f"{admin_url}/docs/assets/{script}" in requested
    assert f"{admin_url}/openapi.json" in requested
    assert TITLE in text and "/v1/accounts" in text


def test_the_pages_name_no_other_host_and_their_favicon_is_served(admin_url: str) -> None:
    for path in ("/docs", "/redoc"):
        page = httpx.get(f"{admin_url}{path}").text
        assert "cdn.jsdelivr.net" not in page and "fonts.googleapis.com" not in page and "tiangolo" not in page
        assert '/docs/assets/swagger-ui/favicon-32x32.png"' in page
    favicon = httpx.get(f"{admin_url}/docs/assets/swagger-ui/favicon-32x32.png")
    assert favicon.status_code == 200 and favicon.headers["content-type"] == "image/png"
