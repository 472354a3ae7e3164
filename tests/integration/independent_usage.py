"""An independent computation of monthly usage, written for the tests from DESIGN.md alone.

It shares no code with fanmeter's rules: it works on raw CloudEvent dicts, parses time
with ``datetime.fromisoformat`` and walks each connection minute by minute.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from kernel.instants import Month
from metering import service as metering_service

MINUTE = timedelta(minutes=1)


def _instant(text: str) -> datetime:
    head, _, _ = text.partition(".")
    zone = text[-6:] if text[-6] in "+-" else "+00:00"
    fraction = text[len(head) + 1 : len(text) - (6 if text[-6] in "+-" else 1)] if "." in text else ""
    micros = int((fraction + "000000")[:6]) if fraction else 0
    return datetime.fromisoformat(head + zone).replace(microsecond=micros).astimezone(UTC)


def _month(instant: datetime) -> str:
    return f"{instant.year:04d}-{instant.month:02d}"


def monthly_usage(raw_events: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, dict[str, int]]]:
    """{(account, month): {service: {connection_minutes, messages_published, messages_delivered, bytes_out}}}."""
    distinct = {(e["source"], e["id"]): e for e in raw_events}
    usage: dict[tuple[str, str], dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    connections: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for event in distinct.values():
        data = event["data"]
        when = _instant(event["time"])
        if event["type"].startswith("fanout.message."):
            field = "messages_published" if event["type"].endswith("published") else "messages_delivered"
            usage[(data["account_id"], _month(when))][data["service_id"]][field] += data["count"]
        else:
            connections[(data["account_id"], data["service_id"], data["connection_id"])].append({**event, "at": when})
    for (account, service, _), events in connections.items():
        _connection(usage, account, service, events)
    return usage


def _connection(usage: Any, account: str, service: str, events: list[dict[str, Any]]) -> None:
    opens = sorted(e["at"] for e in events if e["type"] == "fanout.connection.open")
    closes = sorted(e["at"] for e in events if e["type"] == "fanout.connection.close")
    seen = sorted(e["at"] for e in events)
    start = opens[0] if opens else seen[0]
    end = closes[0] if closes else seen[-1]
    minutes = 1
    while start + minutes * MINUTE < end:
        minutes += 1
    for k in range(minutes):
        usage[(account, _month(start + k * MINUTE))][service]["connection_minutes"] += 1
    reports = sorted(
        (e["at"], e["id"], 0 if e["type"] == "fanout.connection.open" else e["data"]["bytes_out"]) for e in events
    )
    previous = 0
    for at, _, value in reports:
        usage[(account, _month(at))][service]["bytes_out"] += value - previous if value >= previous else value
        previous = value


USAGE_FIELDS = ("connection_minutes", "messages_published", "messages_delivered", "bytes_out")


def usage_differences(engine: Engine, sent: list[dict[str, Any]], months: Iterable[str] = ()) -> list[str]:
    """Usage cells (account, month, service, field) the pipeline billed unequal to ``monthly_usage(sent)``,
    over every month the events touch and ``months`` besides."""
    expected = monthly_usage(sent)
    accounts = {e["data"]["account_id"] for e in sent}
    every_month = {month for _, month in expected} | set(months)
    differences: list[str] = []
    for account in sorted(accounts):
        for month in sorted(every_month):
            report = metering_service.usage_for_month(engine, account, Month.parse(month)).to_json()
            actual = {s["service_id"]: s for s in report["services"]}
            want = expected.get((account, month), {})
            for sid in sorted(set(actual) | set(want)):
                for name in USAGE_FIELDS:
                    got, exp = actual.get(sid, {}).get(name, 0), want.get(sid, {}).get(name, 0)
                    if got != exp:
                        differences.append(f"{account} {month} {sid} {name}: billed {got}, sent {exp}")
    return differences
