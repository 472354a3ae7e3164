"""The threshold checker on a real database: each crossing fires once per threshold and month, with a
webhook event and an audit entry, however often it runs, whatever rollups do, and two at once."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.orm import Session

from billing.alerts import checker
from billing.alerts.orm import AlertCheck, ThresholdCrossing, UsageThreshold
from billing.orm import AuditEntry
from billing.webhooks.events import USAGE_THRESHOLD_CROSSED
from billing.webhooks.orm import WebhookEvent
from kernel.instants import Month
from metering.celery_app import app as celery_app
from metering.orm import UsageDaily
from tests.admin_world import OTHER, OWN, World, build_world
from tests.stack import run_cli

MARCH_12 = datetime(2026, 3, 12, 12, tzinfo=UTC)
CARD = {
    "effective_month": "2026-01",
    "card": {
        "name": "contract",
        "currency": "EUR",
        "connection_minutes": [{"up_to": None, "unit_price": "1000.000000"}],  # 0.001 a minute
        "messages": [{"up_to": None, "unit_price": "2.000000"}],
        "bandwidth": [{"up_to": None, "unit_price": "0.120000"}],
    },
}


@pytest.fixture
def world(engine: Engine) -> Iterator[World]:
    world = build_world(engine)
    with world.client:
        yield world


def threshold(world: World, measure: str, limit: str, name: str, account: str = OWN) -> str:
    response = world.client.post(
        f"/v1/accounts/{account}/usage-alerts",
        json={"measure": measure, "limit": limit, "name": name},
        headers=world.as_role("superuser", account),
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def set_usage(engine: Engine, account: str, day: date, **values: int) -> None:
    """Write a day's rollup as a rollup pass would (a rerun rewrites the same row)."""
    row = {"connection_minutes": 0, "messages_published": 0, "messages_delivered": 0, "bytes_out": 0, **values}
    with engine.begin() as conn:
        key = (UsageDaily.account_id == account) & (UsageDaily.service_id == "svc-a") & (UsageDaily.day == day)
        conn.execute(delete(UsageDaily).where(key))
        conn.execute(insert(UsageDaily), [{"account_id": account, "service_id": "svc-a", "day": day, **row}])


def run(world: World, now: datetime = MARCH_12) -> checker.CheckRun:
    return checker.check(world.engine, now, 72)


def fired(engine: Engine) -> list[tuple[str, str, str]]:
    with Session(engine) as session:
        rows = session.execute(
            select(ThresholdCrossing.threshold_id, ThresholdCrossing.month, ThresholdCrossing.value).order_by(
                ThresholdCrossing.id
            )
        )
        return [(t, m, format(v, "f")) for t, m, v in rows]


def events(engine: Engine) -> list[dict[str, Any]]:
    """This test's threshold events (the webhook tables are not cleared between tests: its thresholds are)."""
    with Session(engine) as session:
        ours = set(session.scalars(select(UsageThreshold.id)))
        query = select(WebhookEvent.data).where(WebhookEvent.type == USAGE_THRESHOLD_CROSSED)
        found = [dict(data) for data in session.scalars(query.order_by(WebhookEvent.seq))]
    return [data for data in found if data["threshold_id"] in ours]


def test_a_crossing_fires_once_with_a_webhook_event_and_an_audit_entry(world: World) -> None:
    messages = threshold(world, "messages", "1000", "a thousand messages")
    minutes = threshold(world, "connection_minutes", "500", "minutes")
    set_usage(world.engine, OWN, date(2026, 3, 2), messages_published=400, messages_delivered=600)

    first = run(world)

    assert (first.changed, first.checked, first.fired) == (1, 1, 1)
    assert fired(world.engine) == [(messages, "2026-03", "1000")]
    [event] = events(world.engine)
    assert event | {"crossed_at": None} == {
        "threshold_id": messages, "name": "a thousand messages", "account_id": OWN, "month": "2026-03",
        "measure": "messages", "limit": "1000", "value": "1000", "currency": None, "crossed_at": None,
    }  # fmt: skip
    with Session(world.engine) as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "alert.threshold_crossed")).one()
    assert (entry.actor, entry.account_id, entry.target) == ("system", OWN, f"threshold {messages} 2026-03")
    assert entry.after is not None and entry.after["webhook_event_id"].startswith("msg_")
    assert minutes not in {t for t, _, _ in fired(world.engine)}


def test_rerunning_the_checker_or_the_rollups_never_fires_a_threshold_twice_in_a_month(world: World) -> None:
    messages = threshold(world, "messages", "1000", "a thousand messages")
    set_usage(world.engine, OWN, date(2026, 3, 2), messages_published=1000)
    assert run(world).fired == 1

    again = run(world)  # the beat's next pass, or a redelivered task: usage unchanged
    set_usage(world.engine, OWN, date(2026, 3, 2), messages_published=900)  # a rollup rerun lowers it...
    lowered = run(world)
    set_usage(world.engine, OWN, date(2026, 3, 2), messages_published=5000)  # ...and raises it again
    raised = run(world)
    with world.engine.begin() as conn:  # even with the checker's memory lost
        conn.execute(delete(AlertCheck))
    forgetful = run(world)

    assert (again.changed, again.fired) == (0, 0)
    assert [r.fired for r in (lowered, raised, forgetful)] == [0, 0, 0]
    assert fired(world.engine) == [(messages, "2026-03", "1000")]
    assert len(events(world.engine)) == 1


def test_each_month_fires_its_own_crossing_and_the_previous_month_is_checked_through_its_grace(world: World) -> None:
    messages = threshold(world, "messages", "10", "ten")
    set_usage(world.engine, OWN, date(2026, 3, 31), messages_published=5)
    assert run(world, datetime(2026, 3, 31, 23, tzinfo=UTC)).fired == 0

    set_usage(world.engine, OWN, date(2026, 3, 31), messages_published=15)  # a late event of March, in April
    set_usage(world.engine, OWN, date(2026, 4, 1), messages_published=20)
    april = run(world, datetime(2026, 4, 1, 6, tzinfo=UTC))

    assert april.months == (Month(2026, 4), Month(2026, 3))
    assert sorted(fired(world.engine)) == [(messages, "2026-03", "15"), (messages, "2026-04", "20")]


def test_money_thresholds_use_the_statements_pricing_and_currency_and_the_projection(world: World) -> None:
    response = world.client.put(f"/v1/accounts/{OWN}/rate-card", json=CARD, headers=world.as_role("finance"))
    assert response.status_code in (200, 201), response.text
    spend = threshold(world, "amount", "50.00", "spend")
    pace = threshold(world, "projected_amount", "100.00", "pace")
    # 11.5 days of 31 gone at MARCH_12: 20,000,000 messages are 40.00 EUR, projected 40 x 31 / 11.5 = 107.83.
    set_usage(world.engine, OWN, date(2026, 3, 2), messages_published=20_000_000)

    run(world)

    assert fired(world.engine) == [(pace, "2026-03", "107.83")]
    assert events(world.engine)[0]["currency"] == "EUR"
    set_usage(world.engine, OWN, date(2026, 3, 2), messages_published=25_000_000)
    run(world)
    assert fired(world.engine)[1] == (spend, "2026-03", "50.00")


def test_a_new_threshold_is_checked_against_usage_already_there(world: World) -> None:
    set_usage(world.engine, OWN, date(2026, 3, 2), connection_minutes=700)
    assert run(world).checked == 0  # no thresholds yet: nothing to check, the usage is remembered

    minutes = threshold(world, "connection_minutes", "500", "minutes")

    assert run(world).fired == 1
    assert fired(world.engine) == [(minutes, "2026-03", "700")]


def test_a_removed_threshold_fires_no_more_and_other_accounts_are_untouched(world: World) -> None:
    gone = threshold(world, "messages", "1", "gone")
    theirs = threshold(world, "messages", "1", "theirs", account=OTHER)
    world.client.delete(f"/v1/accounts/{OWN}/usage-alerts/{gone}", headers=world.as_role("superuser"))
    set_usage(world.engine, OWN, date(2026, 3, 2), messages_published=5)
    set_usage(world.engine, OTHER, date(2026, 3, 2), messages_published=5)

    run(world)

    assert fired(world.engine) == [(theirs, "2026-03", "5")]


def test_checkers_running_at_once_fire_a_crossing_once(world: World) -> None:
    ids = [threshold(world, "messages", str(limit), f"t{limit}") for limit in (1, 2, 3)]
    set_usage(world.engine, OWN, date(2026, 3, 2), messages_published=10)
    results: list[int] = []
    barrier = threading.Barrier(4)

    def one() -> None:
        barrier.wait()
        results.append(run(world).fired)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(results) == 3
    assert sorted(t for t, _, _ in fired(world.engine)) == sorted(ids)
    assert sorted(e["threshold_id"] for e in events(world.engine)) == sorted(ids)


def test_alert_check_memory_is_per_account_and_month(world: World) -> None:
    threshold(world, "messages", "100", "hundred")
    set_usage(world.engine, OWN, date(2026, 3, 2), messages_published=5)
    run(world)
    with world.engine.begin() as conn:
        conn.execute(update(AlertCheck).values(messages=4))  # as if the last pass saw less

    assert run(world).changed == 1


def test_the_cli_sets_lists_checks_and_removes_thresholds(world: World, stack_env: dict[str, str]) -> None:
    made = run_cli(stack_env, "alerts", "set", OWN, "messages", "100", "--name", "cli hundred")
    assert made.returncode == 0, made.stderr
    threshold_id = made.stdout.split()[1].rstrip(":")
    set_usage(world.engine, OWN, date(2026, 3, 2), messages_published=150)

    checked = run_cli(stack_env, "alerts", "check", "--now", MARCH_12.isoformat())
    listed = run_cli(stack_env, "alerts", "list", OWN, "--format", "json")
    removed = run_cli(stack_env, "alerts", "remove", OWN, threshold_id)

    assert "1 with thresholds, 1 fired" in checked.stdout, checked.stdout + checked.stderr
    [shown] = json.loads(listed.stdout)
    assert (shown["id"], shown["limit"], shown["name"]) == (threshold_id, "100", "cli hundred")
    assert removed.returncode == 0, removed.stderr
    assert world.client.get(f"/v1/accounts/{OWN}/usage-alerts", headers=world.as_role("admin")).json() == []
    crossings = world.client.get(
        f"/v1/accounts/{OWN}/usage-alerts/crossings?month=2026-03", headers=world.as_role("billing")
    )
    assert [(c["threshold_id"], c["value"]) for c in crossings.json()] == [(threshold_id, "150")]
    with Session(world.engine) as session:
        actors = set(session.scalars(select(AuditEntry.actor).where(AuditEntry.target == f"threshold {threshold_id}")))
    assert actors == {"cli"}


def test_the_beat_task_fires_through_a_real_worker_and_later_passes_fire_nothing_more(
    world: World,
    worker: Any,  # noqa: ARG001 (a real worker must run)
) -> None:
    messages = threshold(world, "messages", "10", "ten")
    set_usage(world.engine, OWN, date(2026, 3, 2), messages_published=11)
    task = celery_app.conf.beat_schedule["usage-alerts"]["task"]

    celery_app.send_task(task, kwargs={"now": MARCH_12.isoformat()})
    _wait_until(lambda: bool(fired(world.engine)))
    set_usage(world.engine, OWN, date(2026, 3, 2), messages_published=12)  # a rollup rerun, then two passes
    for _ in range(2):
        celery_app.send_task(task, kwargs={"now": MARCH_12.isoformat()})
    _wait_until(lambda: _checked_messages(world) == 12)

    assert fired(world.engine) == [(messages, "2026-03", "11")]
    assert len(events(world.engine)) == 1


def _checked_messages(world: World) -> int | None:
    with Session(world.engine) as session:
        return session.scalar(select(AlertCheck.messages).where(AlertCheck.account_id == OWN))


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, "the worker did not run the checker within 60 s"
        time.sleep(0.1)
