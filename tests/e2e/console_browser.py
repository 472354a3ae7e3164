"""The console's browser tier: a running `fanmeter admin`, Debian's Chromium driven by Playwright, axe-core.

Chromium is the system package (`apt-get install chromium`), launched by path: nothing is
downloaded. Where it is missing the tests fail with that one line, in CI and out of it alike.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.stack import running_admin

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WIDTHS = (1280, 390)
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def chromium_path() -> str:
    """Debian's chromium (or ``FANMETER_CHROMIUM``), or a failure saying how to install it.

    Never a skip: in CI a skipped browser tier would hide a missing install step.
    """
    chosen = os.environ.get("FANMETER_CHROMIUM")
    candidates = (chosen,) if chosen else (*CHROMIUM_PATHS, shutil.which("chromium"))
    for path in candidates:
        if path and Path(path).exists():
            return path
    pytest.fail("Chromium is missing: install it with `apt-get install -y chromium` (Debian's package)", pytrace=False)


@contextmanager
def admin_service(env: dict[str, str], log: Path) -> Iterator[str]:
    """`fanmeter admin` on a free port of the stack ``env``; yields its base URL."""
    with running_admin(env, log) as admin:
        yield admin.url


def send_events(url: str, ingest_token: str, events: list[dict[str, Any]]) -> None:
    """POST a batch to the admin service and wait until the real worker has processed it."""
    headers = {"Authorization": f"Bearer {ingest_token}", "Content-Type": "application/cloudevents-batch+json"}
    with httpx.Client(base_url=url, headers=headers, timeout=10) as producer:
        answer = producer.post("/v1/events", content=json.dumps(events))
        assert answer.status_code in (200, 202), answer.text
        batch_id = answer.json()["batch_id"]
        deadline = time.monotonic() + 120
        while not producer.get(f"/v1/events/batches/{batch_id}").json()["done"]:
            assert time.monotonic() < deadline, f"batch {batch_id} not processed"
            time.sleep(0.2)


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page, one line each."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v.get("impact") in ("serious", "critical")
    ]


_WIDE_ELEMENTS = """width => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > width + 0.5 && !e.closest('.table-wrap > table'))
  .map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : '')).slice(0, 5)"""


def check_page(page: Any, name: str) -> None:
    """Screenshots at both widths into docs/screenshots/, and no serious or critical axe violation at either."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
        problems += [f"{width}px: {line}" for line in serious_violations(page)]
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        if overflow > 0:
            wide = page.evaluate(_WIDE_ELEMENTS, width)
            problems.append(f"{width}px: the page scrolls sideways by {overflow}px ({wide})")
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})
    assert problems == [], f"{name}: " + "; ".join(problems)
