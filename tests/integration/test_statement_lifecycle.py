"""The statement lifecycle end to end: real events through a real worker, drafts built by the beat task.

The clock is driven, never slept on: the test moves the admin API's clock and sends the
beat entry's task with the same instant as ``now`` (the beat sends it without one, and the
task then reads the system clock).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from billing.domain import ledger
from billing.orm import AuditEntry, StatementRecord
from fanmeter import ingest as ingest_cli
from metering.bootstrap import Runtime
from metering.celery_app import app as celery_app
from metering.client import PipelineClient
from tests.admin_world import OTHER, OWN, World, build_world
from tests.strategies import close_event, delivered_event, open_event, published_event

MARCH, APRIL, MAY = "2026-03", "2026-04", "2026-05"


@pytest.fixture
def world(engine: Engine, worker: Any) -> Iterator[World]:  # noqa: ARG001 (a real worker must run)
    world = build_world(engine)
    with world.client:
        yield world


def ingest(runtime: Runtime, path: Path, events: list[dict[str, Any]]) -> None:
    path.write_text("\n".join(json.dumps(event) for event in events) + "\n")
    run = ingest_cli.send_files(PipelineClient(runtime.engine), [path], 100, show_progress=False)
    progress = ingest_cli.wait_for(PipelineClient(runtime.engine), run, timeout_s=120, show_progress=False)
    assert (progress.accepted, progress.rejected) == (len(events), 0)


def beat_builds_drafts(world: World, month: str, expected_rows: int) -> None:
    """Send the beat entry's task as of the test clock, and wait until its drafts are stored."""
    entry = celery_app.conf.beat_schedule["statement-drafts"]
    celery_app.send_task(entry["task"], kwargs={"now": world.clock.now.isoformat()})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with Session(world.engine) as session:
            rows = session.scalars(select(StatementRecord).where(StatementRecord.month == month)).all()
        if len(rows) >= expected_rows:
            return
        time.sleep(0.2)
    raise AssertionError(f"the beat task built no drafts for {month} within 60 s")


def test_open_then_draft_by_beat_then_finalized_and_a_late_event_lands_as_a_prior_period_line(
    world: World, runtime: Runtime, tmp_path: Path
) -> None:
    finance, billing = world.as_role("finance"), world.as_role("billing")
    march, april, may = (f"/v1/accounts/{OWN}/statements/{m}" for m in (MARCH, APRIL, MAY))
    ingest(
        runtime,
        tmp_path / "march.jsonl",
        [
            published_event("2026-03-10T10:00:00Z", 1_000_000, account=OWN, service="svc-a"),
            delivered_event("2026-03-10T10:00:01Z", 2_000_000, account=OWN, service="svc-a"),
            open_event("2026-03-12T00:00:00Z", account=OWN, service="svc-b", connection="c1"),
            close_event("2026-03-12T00:10:00Z", bytes_out=5 * 10**9, account=OWN, service="svc-b", connection="c1"),
            published_event("2026-03-11T00:00:00Z", 3, account=OTHER, service="svc-x"),
        ],
    )

    # open: the month is running, the statement is an estimate computed on read
    estimate = world.client.get(march, headers=billing).json()
    assert (estimate["status"], estimate["total"]) == ("open", "6.60")  # 3M messages 6.00 + 5 GB 0.60

    # still open within the grace period: the beat builds nothing for March yet
    world.clock.now = datetime(2026, 4, 3, 23, 0, tzinfo=UTC)
    beat_builds_drafts(world, "2026-02", expected_rows=2)
    assert world.client.get(march, headers=billing).json()["status"] == "open"

    # draft: built by the beat task after the month closed and the grace period passed, for every account
    world.clock.now = datetime(2026, 4, 4, 0, 30, tzinfo=UTC)
    beat_builds_drafts(world, MARCH, expected_rows=2)
    draft = world.client.get(march, headers=billing).json()
    assert {**draft, "status": "open"} == estimate
    assert draft["status"] == "draft"
    assert world.client.get(f"/v1/accounts/{OTHER}/statements/{MARCH}", headers=finance).json()["total"] == "0.00"

    # regenerating a draft with the same usage is idempotent
    assert world.client.post(f"{march}/regenerate", headers=finance).json() == draft
    assert world.client.post(f"{march}/regenerate", headers=finance).json() == draft
    beat_builds_drafts(world, MARCH, expected_rows=2)  # the beat never rewrites a draft
    assert world.client.get(march, headers=billing).json() == draft

    # finalized: numbered and hashed; any change is 409
    finalized = world.client.post(f"{march}/finalize", headers=finance).json()
    assert (finalized["status"], finalized["number"], finalized["total"]) == ("finalized", "FM-2026-000001", "6.60")
    assert world.client.post(f"{march}/regenerate", headers=finance).status_code == 409

    # a late event for March, after finalization
    ingest(
        runtime,
        tmp_path / "late.jsonl",
        [published_event("2026-03-31T23:59:59Z", 500_000, account=OWN, service="svc-a")],
    )
    assert world.client.get(march, headers=billing).json() == finalized  # same body, same content_hash
    april_estimate = world.client.get(april, headers=billing).json()
    assert [(line["kind"], line["amount"], line["description"]) for line in april_estimate["lines"]] == [
        (
            "adjustment",
            "1.00",
            "Prior-period adjustment for 2026-03: +0 minutes, +500,000 messages, +0 bytes (1.00 USD)",
        )
    ]

    # April's draft, built by the beat, carries it; once April is finalized it is never billed again
    world.clock.now = datetime(2026, 5, 4, 0, 30, tzinfo=UTC)
    beat_builds_drafts(world, APRIL, expected_rows=2)
    april_draft = world.client.get(april, headers=billing).json()
    assert (april_draft["status"], april_draft["total"]) == ("draft", "1.00")
    april_final = world.client.post(f"{april}/finalize", headers=finance).json()
    assert april_final["number"] == "FM-2026-000002"  # the year's sequence goes on across months
    assert world.client.get(may, headers=billing).json()["lines"] == []
    assert world.client.get(march, headers=billing).json()["content_hash"] == finalized["content_hash"]

    with Session(world.engine) as session:
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.account_id == OWN).order_by(AuditEntry.id)
        ).all()
        stored = session.scalars(select(StatementRecord).where(StatementRecord.account_id == OWN)).all()
    assert [a for a in actions if a.startswith("statement.")] == [
        "statement.draft",  # February, empty
        "statement.draft",
        "statement.finalize",
        "statement.draft",
        "statement.finalize",
    ]
    march_row = next(row for row in stored if row.month == MARCH)
    # the stored body is the finalized one; the API shows its credit notes (none) beside it
    assert march_row.body == {key: value for key, value in finalized.items() if key not in ledger.NOT_HASHED}
    assert march_row.content_hash == finalized["content_hash"]
