"""Cross-origin clients in a real browser: headless Chromium (Debian's package, through Playwright) loads a
page from one origin (a plain HTTP server of its own) whose EventSource holds an SSE stream of the
broker on another origin. With the service's automatic CORS on (``svc-cors``) the page receives the
origin's first event and what is published; with it off (``svc-a``) the browser refuses the answer
(no ``Access-Control-Allow-Origin``) and the page sees only an error.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.e2e.broker_stack import TOKEN, BrokerNode
from tests.e2e.console_browser import chromium_path

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>cross-origin</title></head><body>
<script>
window.got = {ready: null, messages: [], errors: 0, state: null};
const source = new EventSource(new URLSearchParams(location.search).get("stream"));
source.addEventListener("open", (e) => { if (e.data !== undefined) window.got.ready = e.data; });
source.onmessage = (e) => window.got.messages.push(e.data);
source.onerror = () => { window.got.errors += 1; window.got.state = source.readyState; };
</script></body></html>"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = PAGE.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def page_site() -> Iterator[str]:
    """A site of its own (another port: another origin than the broker's) serving the page."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        yield launched
        launched.close()


def open_page(browser: Any, page_site: str, stream: str) -> Any:
    page = browser.new_page()
    page.goto(f"{page_site}/?{httpx.QueryParams({'stream': stream})}")
    return page


def test_a_page_on_another_origin_holds_an_sse_stream_of_a_service_with_automatic_cors(
    broker: BrokerNode, browser: Any, page_site: str
) -> None:
    channel = f"xo-{uuid.uuid4().hex[:6]}"
    page = open_page(browser, page_site, f"{broker.url}/s/svc-cors/sse?ch={channel}")
    page.wait_for_function("window.got.ready === 'ready'")
    item = {"channel": channel, "formats": {"http-stream": {"content": "data: across origins\n\n"}}}
    published = httpx.post(broker.publish_url("svc-cors"), json={"items": [item]},
                           headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
    assert published.status_code == 200
    page.wait_for_function("window.got.messages.length === 1")
    assert page.evaluate("window.got") == {"ready": "ready", "messages": ["across origins"], "errors": 0, "state": None}
    page.close()


def test_without_automatic_cors_the_browser_refuses_the_stream_to_a_page_on_another_origin(
    broker: BrokerNode, browser: Any, page_site: str
) -> None:
    page = open_page(browser, page_site, f"{broker.url}/s/svc-a/sse?ch=xo-off")
    page.wait_for_function("window.got.errors > 0")
    got = page.evaluate("window.got")
    assert (got["ready"], got["messages"], got["state"]) == (None, [], 2)  # EventSource.CLOSED: not retried
    page.close()
