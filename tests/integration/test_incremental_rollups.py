"""Splitting events into batches, in any order, with rollups in between, never changes usage.

These run the real services against the configured database (no worker: the stages
are called in-process so Hypothesis can choose the interleaving).
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from kernel.instants import Month
from metering import service
from metering.domain.usage import daily_usage, usage_report
from metering.settings import MeteringSettings
from tests.integration.conftest import PIPELINE_TABLES
from tests.strategies import ACCOUNTS, close_event, event_sets, open_event, parsed, published_event

NOW = datetime(2026, 6, 1, tzinfo=UTC)
MONTHS = (
    Month(2025, 11),
    Month(2025, 12),
    Month(2026, 1),
    Month(2026, 2),
    Month(2026, 3),
    Month(2028, 2),
    Month(2028, 3),
)


def _reset(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in PIPELINE_TABLES:
            conn.execute(text(f"DELETE FROM {table}"))


def _reports(engine: Engine) -> dict[tuple[str, str], Any]:
    return {(a, str(m)): service.usage_for_month(engine, a, m).to_json() for a in ACCOUNTS for m in MONTHS}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event_sets(max_connections=4, max_messages=4), st.randoms(use_true_random=False), st.integers(1, 5))
def test_any_split_and_order_of_batches_with_rollups_between_gives_the_reference_usage(
    engine: Engine, dicts: list[dict[str, Any]], rng: random.Random, n_batches: int
) -> None:
    _reset(engine)
    texts = [json.dumps(d) for d in dicts]
    texts += rng.sample(texts, len(texts) // 4)  # resends
    rng.shuffle(texts)
    cuts = sorted(rng.randint(0, len(texts)) for _ in range(n_batches - 1))
    batches = [texts[a:b] for a, b in zip([0, *cuts], [*cuts, len(texts)], strict=True)]

    for number, batch in enumerate(batches):
        service.ingest_batch(engine, f"b{number}", batch, NOW)
        if rng.random() < 0.5:
            service.rollup_pass(engine, limit=rng.randint(1, 3))
        if rng.random() < 0.3:  # a redelivered batch
            service.ingest_batch(engine, f"b{number}", batch, NOW)
    service.rollup_until_clean(engine, limit=MeteringSettings().rollup_pass_size)

    reference = daily_usage(parsed(dicts)).values()
    expected = {(a, str(m)): usage_report(a, m, reference).to_json() for a in ACCOUNTS for m in MONTHS}
    assert _reports(engine) == expected


def test_a_redelivered_batch_is_counted_once(engine: Engine) -> None:
    event = {
        "specversion": "1.0",
        "id": "e1",
        "source": "broker/n1",
        "type": "fanout.message.delivered",
        "time": "2026-03-03T10:00:00Z",
        "data": {"account_id": "acct-1", "service_id": "svc", "channel": "c", "count": 7, "bytes": 1},
    }
    payload = [json.dumps(event), "{broken"]

    first = service.ingest_batch(engine, "batch-1", payload, NOW)
    second = service.ingest_batch(engine, "batch-1", payload, NOW)

    assert (first.accepted, first.rejected) == (1, 1)
    assert (second.accepted, second.duplicates, second.rejected) == (1, 0, 1)
    assert service.usage_for_month(engine, "acct-1", Month(2026, 3)).messages_delivered == 7
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM rejected_event")).scalar() == 1


def test_the_same_event_in_another_batch_is_a_duplicate(engine: Engine) -> None:
    event = {
        "specversion": "1.0",
        "id": "e1",
        "source": "broker/n1",
        "type": "fanout.message.published",
        "time": "2026-03-03T10:00:00Z",
        "data": {"account_id": "acct-1", "service_id": "svc", "channel": "c", "count": 2, "bytes": 1},
    }

    service.ingest_batch(engine, "batch-1", [json.dumps(event)], NOW)
    again = service.ingest_batch(engine, "batch-2", [json.dumps(event), json.dumps(event)], NOW)

    assert (again.accepted, again.duplicates) == (0, 2)
    assert service.usage_for_month(engine, "acct-1", Month(2026, 3)).messages_published == 2


def test_a_queued_batch_whose_connection_events_were_all_repeats_does_not_stop_the_rollup(engine: Engine) -> None:
    """Its queue row yields no event to fold; the batches behind it are still folded in the same call."""
    opened = open_event("2026-03-03T10:00:00Z", id="o1", account="acct-1", service="svc", connection="c1")
    closed = close_event("2026-03-03T10:02:30Z", 10, 1, id="x1", account="acct-1", service="svc", connection="c1")
    message = published_event("2026-03-03T10:00:00Z", 2, id="m1", account="acct-1", service="svc")
    other = open_event("2026-03-03T11:00:00Z", id="o2", account="acct-1", service="svc", connection="c2")

    service.ingest_batch(engine, "b1", [json.dumps(opened), json.dumps(closed)], NOW)
    service.ingest_batch(engine, "b2", [json.dumps(opened), json.dumps(message)], NOW)  # the open again
    service.ingest_batch(engine, "b3", [json.dumps(other)], NOW)
    service.rollup_pass(engine, limit=1)  # folds b1 alone
    result = service.rollup_until_clean(engine, limit=1)

    assert result.connections == 1  # c2, after the pass that found nothing new in b2
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pending_batch")).scalar() == 0
    usage = service.usage_for_month(engine, "acct-1", Month(2026, 3))
    assert (usage.connection_minutes, usage.messages_published, usage.bytes_out) == (3 + 1, 2, 10)
