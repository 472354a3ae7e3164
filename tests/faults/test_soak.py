"""A bounded soak: a minute of steady traffic through the whole stack grows nothing without bound.

The hour-long version is bench/soak.py (figures in docs/reliability.md). Here the run is short,
so the check is coarse on purpose: after a 20 % warm-up, the second half's mean of each series
(RSS of each process, outbox depth, pipeline lag) may exceed the first half's only by a generous
margin, which a leak or a backlog that never drains would pass within minutes, not in one.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from tests.faults.harness import FIGURES
from tests.faults.soak import SoakShape, add_accounts, engine_for, halves, run_traffic, soak_stack

pytestmark = pytest.mark.faults

SOAK_S = 60.0


def test_a_minute_of_steady_traffic_bills_exactly_and_grows_no_memory_outbox_or_lag_without_bound(
    stack: dict[str, str], tmp_path: Path
) -> None:
    accounts = [f"soak-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    engine = engine_for(stack["FANMETER_DATABASE_URL"])
    add_accounts(engine, accounts)
    env = {**stack, "FANMETER_ALIVE_INTERVAL_SECONDS": "5", "FANMETER_BROKER_SHIP_INTERVAL_MS": "100"}
    with soak_stack(env, tmp_path, accounts) as (node, pids):
        report = asyncio.run(run_traffic(node, pids, engine, env, accounts, SoakShape(duration_s=SOAK_S)))
    summary = {"fault": "soak", **report.summary()}
    with FIGURES.open("a") as out:
        out.write(json.dumps(summary) + "\n")
    print(json.dumps(summary))  # noqa: T201

    assert report.differences == []
    assert report.connections > 50 and report.events_published > 1000  # the traffic really flowed
    for role in report.peak_rss_mb:
        first, second = halves(report.series(role))
        assert second <= first * 1.25 + 20, f"{role}: RSS {first:.1f} MB then {second:.1f} MB"
    first, second = halves(report.series("outbox_depth"))
    assert second <= first * 2 + 500, f"outbox depth {first:.0f} then {second:.0f}"
    first, second = halves(report.series("lag_s"))
    assert second <= first * 2 + 5, f"pipeline lag {first:.2f} s then {second:.2f} s"
