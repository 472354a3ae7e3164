"""The usage page's alert banners and thresholds over HTTP: who sees which, and only the month's crossings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy import Engine, insert

from billing.alerts import checker
from metering.orm import UsageDaily
from tests.admin_world import OWN, World, build_world
from tests.integration.test_console_pages import sign_in

USAGE = f"/console/accounts/{OWN}/usage"


@pytest.fixture
def world(engine: Engine) -> Iterator[World]:
    world = build_world(engine)
    with world.client:
        yield world


def _threshold(world: World, measure: str, limit: str, name: str) -> None:
    body = {"measure": measure, "limit": limit, "name": name}
    answer = world.client.post(f"/v1/accounts/{OWN}/usage-alerts", json=body, headers=world.as_role("superuser"))
    assert answer.status_code == 201, answer.text


def _crossed(world: World) -> None:
    """Usage over both thresholds on 2026-03-02, and a checker pass at the world's clock (2026-03-15)."""
    row = {"account_id": OWN, "service_id": "svc-a", "day": date(2026, 3, 2), "connection_minutes": 10,
           "messages_published": 3_000_000, "messages_delivered": 0, "bytes_out": 0}  # fmt: skip
    with world.engine.begin() as conn:
        conn.execute(insert(UsageDaily), [row])
    assert checker.check(world.engine, world.clock.now, 72).fired == 2


def test_a_crossing_shows_a_banner_on_the_usage_page_of_its_month_only(world: World) -> None:
    _threshold(world, "messages", "1000000", "a million messages")
    _threshold(world, "amount", "1.00", "first dollar")
    _crossed(world)
    world.client.cookies.clear()
    sign_in(world.client, world.tokens["billing"])

    march = world.client.get(USAGE).text
    april = world.client.get(f"{USAGE}?month=2026-02").text

    assert march.count('class="notice warn"') == 2
    assert "Messages reached 3,000,000" in march and "“a million messages” of 1,000,000" in march
    assert "Month-to-date amount reached $" in march and "“first dollar” of $1.00" in march
    assert "2026-03-15 12:00 UTC" in march
    assert 'class="notice warn"' not in april
    assert "Not reached" in april and "Crossed" not in april


def test_an_engineer_sees_usage_alerts_but_no_money(world: World) -> None:
    _threshold(world, "messages", "1000000", "a million messages")
    _threshold(world, "amount", "1.00", "first dollar")
    _crossed(world)
    world.client.cookies.clear()
    sign_in(world.client, world.tokens["engineer"])

    page = world.client.get(USAGE).text

    assert page.count('class="notice warn"') == 1
    assert "a million messages" in page and "first dollar" not in page and "$" not in page


def test_without_thresholds_the_page_says_how_to_set_one(world: World) -> None:
    sign_in(world.client, world.tokens["superuser"])

    page = world.client.get(USAGE).text

    assert "No thresholds." in page and "fanmeter alerts set" in page
    assert 'class="notice warn"' not in page
