"""The demo world of `fanmeter up`: accounts, their products and services, and their simulated traffic.

Four accounts: three paid ones with Compute and Fanout purchased and Fanout on for their Compute
services (Acme also has a Delivery service and a shielded Compute service, for which Fanout is
refused), and a trial one with Compute only, whose products page shows why Fanout cannot be
purchased.

Two kinds of traffic, both sent through the real pipeline:
- a **daily history** from the first day of the month before last until now, per service: a
  shape worth a chart (weekdays busier than weekends, traffic growing month on month) and
  amounts worth a statement in dollars at the default rate card (millions of messages, tens of
  GB a day), in few events: long connections (open and close only) and message counts
  aggregated per six hours, as a broker node sends them;
- the **boundary traffic** (``--events``): short connections around the start of this month,
  with every edge case of the metering rules (connections across the boundary, lost closes).

Event ids are derived from the seed, the service and the day, so sending the demo twice is a
no-op for billing (the second run shows every event as a duplicate), and a run on a later day
adds only the days since.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from billing import accounts, catalog, products, statements
from billing.domain.fanout_rules import COMPUTE, FANOUT
from billing.domain.roles import Principal
from billing.orm import Account, Service
from kernel.instants import MICROS_PER_SECOND, Month, day_start, from_micros, to_micros

TRANSPORTS = ["sse", "http-stream", "long-poll", "websocket"]
DAY_S = 86_400
INTERVAL_S = 6 * 3600  # message counts are aggregated per six hours (an interval never spans a day's end)
ACTOR = Principal(token_id="fanmeter-up", kind="user", role="admin", user_id="fanmeter-up")


@dataclass(frozen=True)
class Traffic:
    """A service's daily traffic on a weekday at the start of the history."""

    connections: int  # connections opened a day
    hours: float  # median hours a connection stays open
    gb_out: float  # GB (10^9 bytes) sent to clients a day
    published: int  # messages published a day
    fanout: int  # deliveries per published message
    growth: float  # growth a month (0.2: +20 %)
    weekend: float  # a weekend day's traffic against a weekday's


@dataclass(frozen=True)
class DemoService:
    name: str
    type: str  # "compute" | "delivery"
    traffic: Traffic | None = None  # None: no Fanout, so nothing metered
    shielding: bool = False  # a feature Fanout refuses to run with


@dataclass(frozen=True)
class DemoAccount:
    id: str
    name: str
    plan: str
    products: tuple[str, ...]
    services: tuple[DemoService, ...]


ACCOUNTS = (
    DemoAccount(
        "acme",
        "Acme Corp",
        "paid",
        (COMPUTE, FANOUT),
        (
            DemoService("acme-chat", "compute", Traffic(30, 3.0, 24.0, 180_000, 14, 0.22, 0.45)),
            DemoService("acme-scores", "compute", Traffic(18, 2.0, 9.0, 30_000, 40, 0.15, 1.5)),
            DemoService("acme-www", "delivery"),  # Fanout refused: not a Compute service
            DemoService("acme-edge", "compute", shielding=True),  # Fanout refused: shielding
        ),
    ),
    DemoAccount(
        "globex",
        "Globex",
        "paid",
        (COMPUTE, FANOUT),
        (DemoService("globex-feed", "compute", Traffic(14, 5.0, 7.0, 40_000, 10, 0.08, 0.8)),),
    ),
    DemoAccount(
        "initech",
        "Initech",
        "paid",
        (COMPUTE, FANOUT),
        (
            DemoService("initech-ops", "compute", Traffic(8, 6.0, 2.5, 20_000, 5, 0.05, 0.2)),
            DemoService("initech-tps", "compute", Traffic(6, 1.5, 0.8, 12_000, 3, 0.3, 0.15)),
        ),
    ),
    DemoAccount("umbrella", "Umbrella Labs", "trial", (COMPUTE,), (DemoService("umbrella-app", "compute"),)),
)
BY_ID = {account.id: account for account in ACCOUNTS}
# Finance's month so far: the month before last finalized for everyone; last month finalized for
# these, the others' drafts waiting for review (Initech's with a service credit).
FINALIZED_LAST_MONTH = ("acme", "globex")
CREDIT = ("initech", "initech-ops", Decimal("-5.00"), "Service credit: initech-ops stream delays on the 12th (SLA)")


def previous_month(month: Month) -> Month:
    return Month(month.year - 1, 12) if month.month == 1 else Month(month.year, month.month - 1)


def seed_catalog(engine: Engine, now: datetime) -> dict[str, str]:
    """Create the demo accounts, their products and services if missing; return service name -> id.

    Everything goes through the billing services (so the audit log shows it); a second run
    changes nothing, and an account left trial by an older demo is marked as this one says.
    """
    ids: dict[str, str] = {}
    with Session(engine, expire_on_commit=False) as session:
        for demo in ACCOUNTS:
            account = session.get(Account, demo.id)
            if account is None:
                accounts.create_account(
                    session, ACTOR, name=demo.name, plan=demo.plan, currency="USD", account_id=demo.id, now=now
                )
            elif account.plan != demo.plan:
                accounts.set_plan(session, ACTOR, demo.id, demo.plan, now)
            superuser = Principal(token_id="fanmeter-up", kind="user", role="superuser", account_id=demo.id)
            for product in demo.products:
                products.purchase(session, superuser, demo.id, product, now)
            existing = {service.name: service for service in catalog.list_services(session, demo.id)}
            for wanted in demo.services:
                service = existing.get(wanted.name) or _create_service(session, superuser, demo.id, wanted, now)
                ids[wanted.name] = service.id
                if wanted.traffic is not None and not service.fanout_enabled:
                    catalog.enable_fanout(session, superuser, service, catalog.TlsPolicy(timeout_seconds=1), now)
    return ids


def _create_service(
    session: Session, principal: Principal, account_id: str, wanted: DemoService, now: datetime
) -> Service:
    service = catalog.create_service(
        session,
        principal,
        account_id,
        name=wanted.name,
        type_=wanted.type,
        flags={"shielding": wanted.shielding},
        now=now,
    )
    if wanted.type == "compute":  # its origin, plain HTTP: no certificate to check, nothing to reach now
        fields = {"name": "origin", "address": f"{wanted.name}.origin.example", "use_tls": False, "override_host": None}
        catalog.create_backend(session, principal, service, fields, {}, catalog.TlsPolicy(timeout_seconds=1), now)
    return service


def finance_review(engine: Engine, finance: Principal, ids: Mapping[str, str], now: datetime) -> None:
    """Draft and finalize statements as finance would, through the billing services; a second run adds nothing.

    The month before last is finalized for every account; last month for ``FINALIZED_LAST_MONTH``,
    the others' drafts rebuilt (so events that arrived since are in them) and one given a credit.
    """
    last = previous_month(Month.of(to_micros(now)))
    plan = [(account.id, previous_month(last), True) for account in ACCOUNTS]
    plan += [(account.id, last, account.id in FINALIZED_LAST_MONTH) for account in ACCOUNTS]
    with Session(engine, expire_on_commit=False) as session:
        credited, service, amount, reason = CREDIT
        if not statements.adjustments_of(session, credited, last) and _status(session, credited, last) != "finalized":
            statements.add_adjustment(
                session, finance, credited, last, amount=amount, reason=reason, service_id=ids[service], now=now
            )
        for account_id, month, final in plan:
            if _status(session, account_id, month) == "finalized":
                continue
            statements.regenerate(session, finance, account_id, month, now)
            if final:
                statements.finalize(session, finance, account_id, month, now)


def _status(session: Session, account_id: str, month: Month) -> str:
    return str(statements.stored_or_estimate(session, account_id, month)["status"])


def metered_services(ids: Mapping[str, str]) -> dict[str, list[str]]:
    """Account -> ids of its services with traffic (Fanout on)."""
    return {
        account.id: [ids[s.name] for s in account.services if s.traffic is not None]
        for account in ACCOUNTS
        if any(s.traffic is not None for s in account.services)
    }


def history_events(ids: Mapping[str, str], start: date, now_us: int, seed: int = 11) -> Iterator[dict[str, Any]]:
    """Yield the daily traffic of every metered service from ``start`` until ``now_us`` (only what has ended)."""
    for account in ACCOUNTS:
        for service in account.services:
            if service.traffic is None:
                continue
            day = start
            while day_start(day) < now_us:
                rng = random.Random(f"{seed}/{service.name}/{day.isoformat()}")
                factor = _factor(service.traffic, (day - start).days, day.weekday() >= 5, rng)
                yield from _day(rng, account.id, ids[service.name], service.traffic, day, factor, now_us)
                day += timedelta(days=1)


def _factor(traffic: Traffic, days_in: int, weekend: bool, rng: random.Random) -> float:
    growth: float = (1 + traffic.growth) ** (days_in / 30)
    return growth * (traffic.weekend if weekend else 1.0) * rng.uniform(0.9, 1.1)


def _day(
    rng: random.Random, account: str, service: str, traffic: Traffic, day: date, factor: float, now_us: int
) -> Iterator[dict[str, Any]]:
    begin = day_start(day)
    count = max(1, round(traffic.connections * factor))
    bytes_each = traffic.gb_out * 1e9 * factor / count
    for n in range(count):
        start = begin + rng.randrange(DAY_S) * MICROS_PER_SECOND
        hours = min(24.0, max(0.02, rng.lognormvariate(math.log(traffic.hours), 0.8)))
        end = start + int(hours * 3600 * MICROS_PER_SECOND)
        sent = int(bytes_each * rng.uniform(0.5, 1.5))
        if end >= now_us:
            continue
        conn = f"h-{service}-{day.isoformat()}-{n}"
        source = f"broker/node-{rng.randint(1, 2)}"
        data = {"account_id": account, "service_id": service, "connection_id": conn}
        yield _event(
            source, f"{conn}-open", "fanout.connection.open", start, {**data, "transport": rng.choice(TRANSPORTS)}
        )
        close = {**data, "bytes_out": sent, "bytes_in": sent // 50, "reason": "client closed"}
        yield _event(source, f"{conn}-close", "fanout.connection.close", end, close)
    for interval in range(DAY_S // INTERVAL_S):
        at = begin + interval * INTERVAL_S * MICROS_PER_SECOND
        if at + INTERVAL_S * MICROS_PER_SECOND > now_us:
            break
        share = (0.1, 0.25, 0.4, 0.25)[interval]  # UTC night, morning, afternoon, evening
        published = max(1, round(traffic.published * factor * share * rng.uniform(0.85, 1.15)))
        data = {"account_id": account, "service_id": service, "channel": "all"}
        key = f"{service}-{at}"
        yield _event("broker/node-1", f"agg-pub-{key}", "fanout.message.published", at,
                     {**data, "count": published, "bytes": published * 300})  # fmt: skip
        delivered = published * traffic.fanout
        yield _event("broker/node-1", f"agg-dlv-{key}", "fanout.message.delivered", at,
                     {**data, "count": delivered, "bytes": delivered * 300})  # fmt: skip


def demo_events(
    boundary_us: int, count: int, services: Mapping[str, list[str]], seed: int = 7
) -> Iterator[dict[str, Any]]:
    """Yield about ``count`` events of short connections and messages around the instant ``boundary_us``."""
    rng = random.Random(seed)
    boundary = from_micros(boundary_us).date().isoformat()
    produced = 0
    serial = 0
    while produced < count:
        account = rng.choice(sorted(services))
        service = rng.choice(services[account])
        start = boundary_us + rng.randint(-3 * 3600, 3 * 3600) * MICROS_PER_SECOND
        serial += 1
        conn = f"c{serial}-{boundary}"  # ids of their own at each month's boundary
        batch = list(_connection(rng, account, service, conn, start))
        batch += list(_messages(rng, account, service, conn, start))
        produced += len(batch)
        yield from batch


def _connection(rng: random.Random, account: str, service: str, conn: str, start: int) -> Iterator[dict[str, Any]]:
    source = f"broker/node-{rng.randint(1, 2)}"
    data = {"account_id": account, "service_id": service, "connection_id": conn}
    yield _event(source, f"{conn}-open", "fanout.connection.open", start, {**data, "transport": rng.choice(TRANSPORTS)})
    duration_s = rng.choice([5, 59, 60, 61, 150, 600, 1800, 3600])
    sent = 0
    for second in range(60, duration_s, 60):
        sent += rng.randint(100, 5000)
        alive = {**data, "bytes_out": sent, "bytes_in": sent // 10}
        yield _event(
            source, f"{conn}-alive-{second}", "fanout.connection.alive", start + second * MICROS_PER_SECOND, alive
        )
    if rng.random() < 0.95:  # one close in twenty is lost, as on a real network
        sent += rng.randint(0, 500)
        close = {**data, "bytes_out": sent, "bytes_in": sent // 10, "reason": "client closed"}
        yield _event(source, f"{conn}-close", "fanout.connection.close", start + duration_s * MICROS_PER_SECOND, close)


def _messages(rng: random.Random, account: str, service: str, conn: str, start: int) -> Iterator[dict[str, Any]]:
    channel = f"{service}-room-{rng.randint(1, 3)}"
    for n in range(rng.randint(0, 3)):
        when = start + rng.randint(0, 600) * MICROS_PER_SECOND
        item = f"{conn}-{n}"  # one id per item, however many start in the same second
        data = {"account_id": account, "service_id": service, "channel": channel}
        yield _event(
            "broker/node-1", f"pub-{item}", "fanout.message.published", when, {**data, "count": 1, "bytes": 200}
        )
        delivered = {**data, "count": rng.randint(1, 40), "bytes": 200}
        yield _event("broker/node-1", f"dlv-{item}", "fanout.message.delivered", when + 1000, delivered)


def _event(source: str, event_id: str, kind: str, time_us: int, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": kind,
        "subject": data["service_id"],
        "time": _rfc3339(from_micros(time_us)),
        "datacontenttype": "application/json",
        "data": data,
    }


def _rfc3339(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def write_demo_file(path: str, now: datetime, count: int, ids: Mapping[str, str]) -> int:
    """Write the daily history since the month before last and ``count`` boundary events as JSON lines.

    Returns how many events were written.
    """
    this_month = Month.of(to_micros(now))
    start = previous_month(previous_month(this_month)).first_day
    written = 0
    with open(path, "w", encoding="utf-8") as out:
        events: Iterable[dict[str, Any]] = history_events(ids, start, to_micros(now))
        for source in (events, demo_events(this_month.start_us, count, metered_services(ids))):
            for event in source:
                out.write(json.dumps(event) + "\n")
                written += 1
    return written
