"""Clock skew between broker nodes, and events weeks late into a finalized month.

Skew: a trace (tests/strategies.generate_trace) spread over three nodes whose clocks are 7 s
behind, right, and 9 s ahead, each connection on one node, deliveries of one item on several.
One part straddles the November/December 2026 boundary (skew moves events across it), another
ends seconds in the future of the pipeline's own clock. Both go through `fanmeter ingest` with
a worker running. Billing is by each event's own time (DESIGN.md), so every account-month's
usage must equal the independent computation over the events as the nodes stamped them.

Late: a trace across the October/November 2026 boundary, of which a seeded 15 % of the October
events are held back. The rest is ingested, October's statements are built and finalized, then
the held-back events arrive (weeks after October ended). October's finalized statements do not
change by a byte; November's draft carries a prior-period adjustment line whose minutes,
messages and bytes are exactly the late events' share of October by the independent
computation; and the usage of every account-month equals the independent computation.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from billing import statements
from billing.domain.roles import Principal
from billing.orm import StatementRecord
from kernel.instants import Month
from tests.faults.harness import compare, engine_for, start_ingest, workers
from tests.faults.soak import add_accounts
from tests.integration.independent_usage import _instant, monthly_usage
from tests.strategies import close_event, delivered_event, generate_trace, open_event, published_event

pytestmark = pytest.mark.faults

TRACE_BOUNDARY = datetime(2026, 2, 1, tzinfo=UTC)  # generate_trace's month boundary
SKEWS = (timedelta(seconds=-7), timedelta(0), timedelta(seconds=9))
FINANCE = Principal(token_id="tok_faults", kind="user", role="finance", user_id="usr_faults")
OCTOBER, NOVEMBER = Month(2026, 10), Month(2026, 11)
NOVEMBER_STARTS = datetime(2026, 11, 1, tzinfo=UTC)


def _at(text: str) -> datetime:
    return _instant(text)  # the independent parser: any RFC 3339 offset, fraction length and case


def _moved(event: dict[str, Any], by: timedelta, source: str | None = None) -> dict[str, Any]:
    moved = {**event, "time": (_at(event["time"]) + by).isoformat()}
    if source is not None:
        moved["source"] = source
    return moved


def _node_of(event: dict[str, Any]) -> int:
    """Each connection on one node; messages on the node their source names (an item's deliveries on several)."""
    key = event["data"].get("connection_id") or event["source"]
    return sum(key.encode()) % len(SKEWS)


def skewed(trace: list[dict[str, Any]], shift: timedelta) -> list[dict[str, Any]]:
    """``trace`` moved by ``shift``, each event on node k stamped with that node's clock (SKEWS[k])."""
    out = []
    for event in trace:
        node = _node_of(event)
        out.append(_moved(event, shift + SKEWS[node], f"broker/skewed-{node}-{event['source'].rsplit('/', 1)[-1]}"))
    return out


def live_traffic(now: datetime, per_node: int = 40) -> list[dict[str, Any]]:
    """What the three nodes stamp right now with their own clocks: short connections and fanned-out items.

    The node 9 s ahead stamps every event of its own in the pipeline's future; deliveries of one
    item on the three nodes carry three different times.
    """
    rng = random.Random(64)
    events: list[dict[str, Any]] = []
    for node, skew in enumerate(SKEWS):
        source = f"broker/live-{node}"
        for n in range(per_node):
            account, service, conn = f"acct-{1 + n % 3}", f"svc-{1 + n % 3}-1", f"live-{node}-{n}"
            opened = now + skew - timedelta(seconds=rng.uniform(0, 20))
            ids = {"account": account, "service": service, "connection": conn, "source": source}
            events.append(open_event(opened.isoformat(), **ids))
            closed = opened + timedelta(seconds=rng.uniform(0.5, 8))
            events.append(close_event(closed.isoformat(), rng.randrange(1, 10_000), **ids))
    for n in range(per_node):
        account, service = f"acct-{1 + n % 3}", f"svc-{1 + n % 3}-1"
        at = now - timedelta(seconds=rng.uniform(0, 5))
        events.append(published_event((at + SKEWS[0]).isoformat(), 1, account=account, service=service,
                                      source="broker/live-0"))  # fmt: skip
        for node, skew in enumerate(SKEWS):
            events.append(delivered_event((at + skew + timedelta(milliseconds=50)).isoformat(), rng.randrange(1, 50),
                                          account=account, service=service, source=f"broker/live-{node}"))  # fmt: skip
    return events


def _ingest(env: dict[str, str], path: Path, events: list[dict[str, Any]]) -> None:
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    ingest = start_ingest(env, path, 200)
    out, err = ingest.communicate(timeout=150)
    assert ingest.returncode == 0, err[-3000:]
    assert "Traceback" not in err


def test_clock_skew_between_nodes_bills_each_event_by_its_own_time_across_a_month_boundary_and_into_the_future(
    stack: dict[str, str], tmp_path: Path
) -> None:
    boundary = skewed(generate_trace(seed=61, n_events=1_500, duplicate_rate=0.02),
                      datetime(2026, 12, 1, tzinfo=UTC) - TRACE_BOUNDARY)  # fmt: skip
    recent = generate_trace(seed=62, n_events=800, duplicate_rate=0.02)
    latest = max(_at(e["time"]) for e in recent)
    # The newest event of the recent part lands 20 s ahead of now, before its node's own skew.
    now_part = skewed(recent, datetime.now(UTC) + timedelta(seconds=20) - latest)
    trace = boundary + now_part + live_traffic(datetime.now(UTC))
    future = sum(1 for e in trace if _at(e["time"]) > datetime.now(UTC))
    engine = engine_for(stack)
    with workers(stack):
        _ingest(stack, tmp_path / "skewed.jsonl", trace)
        outcome = compare(
            engine, "clock skew between nodes (-7 s, 0, +9 s: events up to 29 s ahead of the pipeline)", 1, trace
        )
    outcome.record()
    print(f"events in the future when sent: {future}")  # noqa: T201
    assert future >= 40  # the node ahead stamps its live traffic in the pipeline's future
    assert outcome.events_billed == outcome.events_sent
    assert outcome.differences == [], outcome.differences[:20]


def test_events_weeks_late_into_a_finalized_month_become_a_prior_period_line_on_the_next_open_statement(
    stack: dict[str, str], tmp_path: Path
) -> None:
    trace = [_moved(e, NOVEMBER_STARTS - TRACE_BOUNDARY) for e in
             generate_trace(seed=63, n_events=2_000, duplicate_rate=0.02)]  # fmt: skip
    rng = random.Random(63)
    held = {(e["source"], e["id"]) for e in trace if _at(e["time"]) < NOVEMBER_STARTS and rng.random() < 0.15}
    on_time = [e for e in trace if (e["source"], e["id"]) not in held]
    late = [e for e in trace if (e["source"], e["id"]) in held]
    accounts = sorted({e["data"]["account_id"] for e in trace})
    engine = engine_for(stack)
    add_accounts(engine, accounts)
    with workers(stack):
        _ingest(stack, tmp_path / "on-time.jsonl", on_time)
        now = datetime.now(UTC)
        with engine.begin() as conn:
            statements.build_drafts(conn, OCTOBER, now)
        with Session(engine) as session:
            for account in accounts:
                statements.finalize(session, FINANCE, account, OCTOBER, now)
        finalized = _stored(engine, OCTOBER)
        _ingest(stack, tmp_path / "late.jsonl", late)  # October's events, five weeks after October ended
        outcome = compare(engine, "events weeks late into a finalized month", 1, trace)
        with engine.begin() as conn:
            statements.build_drafts(conn, NOVEMBER, datetime.now(UTC))
    outcome.record()
    assert outcome.events_billed == outcome.events_sent
    assert outcome.differences == [], outcome.differences[:20]
    assert _stored(engine, OCTOBER) == finalized  # nothing finalized changed
    before, after = monthly_usage(on_time), monthly_usage(trace)
    lines = 0
    for account in accounts:
        deltas = [_sum(after, account, names) - _sum(before, account, names) for names in
                  (("connection_minutes",), ("messages_published", "messages_delivered"), ("bytes_out",))]  # fmt: skip
        november = _stored(engine, NOVEMBER)[account]
        prior = [line for line in november["lines"] if "Prior-period adjustment for 2026-10" in line["description"]]
        if any(deltas):
            minutes, messages, bytes_out = deltas
            expected = (
                f"Prior-period adjustment for 2026-10: {minutes:+,} minutes, {messages:+,} messages, "
                f"{bytes_out:+,} bytes"
            )
            assert [line["description"].split(" (")[0] for line in prior] == [expected]
            lines += 1
        else:
            assert prior == []
    print(f"late events: {len(late)}, prior-period lines: {lines}")  # noqa: T201
    assert lines > 0


def _sum(usage: dict[tuple[str, str], dict[str, dict[str, int]]], account: str, names: tuple[str, ...]) -> int:
    return sum(fields.get(n, 0) for fields in usage.get((account, "2026-10"), {}).values() for n in names)


def _stored(engine: Engine, month: Month) -> dict[str, Any]:
    """Each account's stored statement of ``month``: its body, status, number and hash."""
    with Session(engine) as session:
        rows = session.scalars(select(StatementRecord).where(StatementRecord.month == str(month))).all()
        return {r.account_id: {**r.body, "_status": r.status, "_number": r.number} for r in rows}
