"""The whole metering pipeline with a real Celery worker process, on the configured database."""

from __future__ import annotations

import json
import random
from datetime import date
from itertools import product
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from fanmeter import ingest as ingest_cli
from kernel.instants import Month
from metering import repository, service
from metering.bootstrap import Runtime
from metering.client import PipelineClient
from metering.tasks import ingest_batch
from tests.integration.independent_usage import monthly_usage
from tests.strategies import generate_trace, published_event

MONTHS = (Month(2026, 1), Month(2026, 2), Month(2026, 3))


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _ingest(runtime: Runtime, path: Path, batch_size: int = 1000) -> service.IngestProgress:
    run = ingest_cli.send_files(PipelineClient(runtime.engine), [path], batch_size, show_progress=False)
    return ingest_cli.wait_for(PipelineClient(runtime.engine), run, timeout_s=300, show_progress=False)


def _invalid_events(rng: random.Random, good: list[dict[str, Any]]) -> list[str]:
    """Broken copies of good events, one kind of breakage each, plus malformed JSON."""
    broken: list[str] = ["{not json", "[1, 2", '"just a string"']
    for n in range(200):
        event = json.loads(json.dumps(rng.choice(good)))
        event["id"] = f"broken-{n}"
        match n % 7:
            case 0:
                event["specversion"] = "0.3"
            case 1:
                del event["data"]["account_id"]
            case 2:
                event["type"] = "fanout.connection.teleported"
            case 3:
                event["time"] = "2026-01-31T23:59:30"
            case 4:
                event["data"]["account_id"] = 42
            case 5:
                event["time"] = "yesterday"
            case _:
                event["source"] = ""
        broken.append(json.dumps(event))
    return broken


def _usage_by_account_month(engine: Engine, accounts: set[str]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (account, str(month)): service.usage_for_month(engine, account, month).to_json()
        for account in accounts
        for month in MONTHS
    }


def _expected_json(expected: dict[tuple[str, str], dict[str, dict[str, int]]], key: tuple[str, str]) -> list[Any]:
    services = expected.get(key, {})
    return [
        {
            "service_id": sid,
            "connection_minutes": services[sid]["connection_minutes"],
            "messages_published": services[sid]["messages_published"],
            "messages_delivered": services[sid]["messages_delivered"],
            "bytes_out": services[sid]["bytes_out"],
        }
        for sid in sorted(services)
    ]


@pytest.mark.usefixtures("worker")
def test_a_trace_of_20000_events_with_duplicates_and_invalid_events_meters_exactly(
    runtime: Runtime, engine: Engine, tmp_path: Path
) -> None:
    rng = random.Random(20)
    trace = generate_trace(seed=20, n_events=20_000, duplicate_rate=0.05)
    lines = [json.dumps(e) for e in trace] + _invalid_events(rng, trace)
    rng.shuffle(lines)
    path = _write(tmp_path / "trace.jsonl", lines)

    progress = _ingest(runtime, path)

    distinct = {(e["source"], e["id"]) for e in trace}
    assert progress.accepted == len(distinct)
    assert progress.duplicates == len(trace) - len(distinct)
    assert progress.rejected == 203
    expected = monthly_usage(trace)
    accounts = {e["data"]["account_id"] for e in trace}
    actual = _usage_by_account_month(engine, accounts)
    for (account, month), report in actual.items():
        assert report["services"] == _expected_json(expected, (account, month)), (account, month)
    assert sum(r["connection_minutes"] for r in actual.values()) > 0
    assert sum(r["messages_delivered"] for r in actual.values()) > 0

    again = _ingest(runtime, path)

    assert again.accepted == 0
    assert again.duplicates == len(trace)
    assert _usage_by_account_month(engine, accounts) == actual


@pytest.mark.usefixtures("worker")
def test_bad_input_is_rejected_with_reasons_while_good_events_of_the_batch_count(
    runtime: Runtime, engine: Engine, tmp_path: Path
) -> None:
    good = {
        "specversion": "1.0",
        "id": "good-1",
        "source": "broker/n1",
        "type": "fanout.message.published",
        "time": "2026-02-01T00:00:00+01:00",
        "data": {"account_id": "acct", "service_id": "svc", "channel": "c", "count": 3, "bytes": 10},
    }

    def variant(**changes: Any) -> str:
        event = json.loads(json.dumps(good))
        data = changes.pop("data", {})
        event.update(changes)
        event["data"].update(data)
        event["data"] = {k: v for k, v in event["data"].items() if v is not None}
        return json.dumps({k: v for k, v in event.items() if v is not None})

    lines = [
        json.dumps(good),
        "{malformed",
        variant(id="b1", data={"count": "3"}),
        variant(id="b2", data={"channel": None}),
        variant(id="b3", type="fanout.unknown"),
        variant(id="b4", data={"count": -1}),
        variant(id="b5", data={"count": 10**30}),
        variant(id="b6", time="2026-02-01T00:00:00"),
        variant(id="b7", specversion="0.3"),
        variant(id="good-2", time="2026-01-31T23:30:00-01:00"),
    ]
    path = _write(tmp_path / "bad.jsonl", lines)

    progress = _ingest(runtime, path)

    assert (progress.accepted, progress.duplicates, progress.rejected) == (2, 0, 8)
    reasons = {reason for reason, _ in progress.rejection_reasons}
    assert any(r.startswith("malformed JSON") for r in reasons)
    assert "data.count must be an integer, got string" in reasons
    assert "missing required field data.channel" in reasons
    assert "unknown type 'fanout.unknown'" in reasons
    assert "data.count must not be negative" in reasons
    assert any(r.startswith("data.count is implausibly large") for r in reasons)
    assert "time has no time zone (RFC 3339 requires Z or an offset)" in reasons
    assert "specversion must be \"1.0\", got '0.3'" in reasons
    january = service.usage_for_month(engine, "acct", Month(2026, 1))
    february = service.usage_for_month(engine, "acct", Month(2026, 2))
    assert (january.messages_published, february.messages_published) == (3, 3)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM rejected_event")).scalar()
    assert stored == 8


@pytest.mark.usefixtures("worker")
def test_a_batch_sent_as_json_is_ingested_like_one_sent_as_msgpack(runtime: Runtime, engine: Engine) -> None:
    """`fanmeter ingest` sends batches as msgpack; Celery's default JSON is still understood by the worker."""
    texts = [json.dumps(published_event("2026-03-03T10:00:00Z", 5, id=f"e{n}", account="acct-j")) for n in range(2)]

    for serializer, batch in (("json", texts[:1]), ("msgpack", texts[1:])):
        message = ingest_batch.apply_async(args=(f"producer-{serializer}", batch), serializer=serializer)
        assert message is not None
    progress = ingest_cli.wait_for(
        PipelineClient(runtime.engine), ingest_cli.IngestRun("producer", 2, 2), timeout_s=120, show_progress=False
    )

    assert (progress.accepted, progress.rejected) == (2, 0)
    assert service.usage_for_month(engine, "acct-j", Month(2026, 3)).messages_published == 10


def test_one_usage_query_for_several_accounts_and_months_gives_what_each_single_read_gives(engine: Engine) -> None:
    """Statements read many accounts' months at once; the usage API and the CLI read one: the same query."""
    days = {Month(2026, 1): date(2026, 1, 31), Month(2026, 2): date(2026, 2, 1), Month(2026, 3): date(2026, 3, 15)}
    keys = product(("a-1", "a-2", "a-3"), ("svc-b", "svc-a"), days)
    rows = [
        {"account_id": account, "service_id": service_id, "day": days[month], "connection_minutes": n,
         "messages_published": 2 * n, "messages_delivered": 3 * n, "bytes_out": 5 * n}
        for n, (account, service_id, month) in enumerate(keys) if n % 4 != 3
    ]  # fmt: skip
    with engine.begin() as conn:
        repository.add_usage(conn, rows)
    january, march = Month(2026, 1), Month(2026, 3)

    with engine.connect() as conn:
        some = service.usage_reports(conn, [january, march], ["a-1", "a-3"])
        every = service.usage_reports(conn, list(days))
        singles = {(a, m): service.usage_on(conn, a, m) for a in ("a-1", "a-2", "a-3") for m in days}

    used = {key: report for key, report in singles.items() if report.services}
    assert some == {(a, m): report for (a, m), report in used.items() if a != "a-2" and m != Month(2026, 2)}
    assert every == used
    assert [s.service_id for s in every[("a-1", march)].services] == ["svc-a", "svc-b"]
    assert sum(report.messages for report in every.values()) == 5 * sum(row["connection_minutes"] for row in rows)
