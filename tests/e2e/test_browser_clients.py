"""A real browser as the end-user client: headless Chromium (Debian's package, through Playwright) loads a
page served through the broker from an origin behind it; the page's EventSource and WebSocket
(WebSocket-over-HTTP to the origin) receive what is published, and the pipeline bills exactly that.

What each client received is read back from the page (``window.received``), and the expected bill
is computed from it alone: every SSE event the browser parsed and every WebSocket message it got,
re-encoded as the broker wrote them, is bytes out; each is a delivered message; the two clients
are one connection minute each; the page itself is a relayed answer, neither a connection nor billed.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.broker_metering import wait_for_usage
from tests.e2e.broker_stack import TOKEN, broker_node, running, services_file
from tests.e2e.console_browser import chromium_path
from tests.stack import free_port

ITEMS = 5


@contextmanager
def browser_origin(tmp: Path) -> Iterator[str]:
    """``tests/e2e/browser_origin.py`` under uvicorn; yields its base URL."""
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "tests.e2e.browser_origin:app", "--port", str(port),
            "--log-level", "warning"]  # fmt: skip
    with running(args, {}, port, tmp / f"browser-origin-{port}.log"):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        yield launched
        launched.close()


def sse_wire(event_type: str, data: str) -> int:
    """The bytes of one SSE event as the origin and publisher wrote it (what the browser parsed back)."""
    prefix = "" if event_type == "message" else f"event: {event_type}\n"
    return len(f"{prefix}data: {data}\n\n".encode())


def publish_items(url: str, channel: str) -> None:
    """``ITEMS`` items, each an SSE event for streams and a text message for sockets."""
    with httpx.Client(timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}) as publisher:
        for n in range(ITEMS):
            formats = {"http-stream": {"content": f"data: item-{n}\n\n"}, "ws-message": {"content": f"item-{n}"}}
            answer = publisher.post(url, json={"items": [{"channel": channel, "formats": formats}]})
            assert answer.status_code == 200, answer.text


def test_a_browsers_event_source_and_websocket_receive_what_is_published_and_are_billed_exactly_that(
    broker_stack_env: dict[str, str], browser: Any, tmp_path: Path
) -> None:
    account = f"acct-{uuid.uuid4().hex[:8]}"
    channel = f"browser-{uuid.uuid4().hex[:6]}"
    with browser_origin(tmp_path) as origin:
        config = services_file(tmp_path / "services.json", origin, account=account)
        with broker_node(broker_stack_env, config, f"browser-{account}") as node:
            page = browser.new_page()
            page.goto(f"{node.url}/s/svc-a/page?ch={channel}")
            # Both clients subscribed: the SSE stream's first event came, the socket got its welcome.
            page.wait_for_function("window.received.sseOpen && window.received.ws.includes('welcome')")
            publish_items(node.publish_url(), channel)
            everything = f"window.received.sse.length === {ITEMS + 1} && window.received.ws.length === {ITEMS + 1}"
            page.wait_for_function(everything)
            received = page.evaluate("window.received")
            page.evaluate("window.closeClients()")
            page.close()
    items = [f"item-{n}" for n in range(ITEMS)]
    assert received["sse"] == [["ready", "subscribed"], *(["message", i] for i in items)]
    assert received["ws"] == ["welcome", *items]
    expected = {
        "messages_published": ITEMS,
        "messages_delivered": (len(received["sse"]) - 1) + (len(received["ws"]) - 1),  # less the origin's own
        "connection_minutes": 2,
        "bytes_out": sum(sse_wire(t, d) for t, d in received["sse"]) + sum(len(m.encode()) for m in received["ws"]),
    }
    assert wait_for_usage(broker_stack_env, account, expected) == expected
