"""Benchmark: the console's busiest pages with 10,000 accounts and a year of daily usage on PostgreSQL.

Seeds a fresh database (created in the server of ``--pg-url``, dropped afterwards) with
``--accounts`` accounts, one service each, ``--days`` days of ``usage_daily`` rows up to today,
last month's drafts built by the real batch service and a share of them finalized; starts
``fanmeter admin`` (``--workers`` processes), signs a finance person and an engineer in through the
sign-in form, and drives each page with ``--clients`` concurrent clients for ``--requests``
requests: the month's statements (first page, a search, a status filter, sorted by total, the
open month), one statement, and an account's usage page. Prints p50/p95 latency, HTML size, and
the server's and PostgreSQL's CPU per request (steadier than latency on a shared machine).
Goal (issue "The console"): p95 under 150 ms at 10 concurrent clients, every page under 200 KB.

    .venv/bin/python bench/console.py --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from billing import accounts, statements
from billing.access import issue
from billing.domain.ledger import previous_month
from billing.domain.roles import Principal
from billing.orm import StatementRecord, User
from fanmeter import migrate
from kernel.db import make_engine
from kernel.instants import Month, to_micros

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.admin_server import cpu_seconds, serving_admin  # noqa: E402

SEEDER = Principal(token_id="bench", kind="user", role="admin", user_id="bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--requests", type=int, default=300, help="requests per page measured")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument(
        "--keep", metavar="NAME", help="seed database NAME once and keep it; later runs with the same NAME reuse it"
    )
    parser.add_argument(
        "--source",
        type=Path,
        help="serve from this checkout of fanmeter (e.g. an earlier commit's `git archive`), to compare before/after",
    )
    parser.add_argument("--only", action="append", default=[], help="measure only pages whose name contains this")
    args = parser.parse_args()
    url, drop, fresh = _database(args.pg_url, args.keep)
    try:
        migrate.upgrade(url)
        now = datetime.now(UTC)
        tokens = _seed(url, args, now) if fresh else _tokens(url, now)
        with tempfile.TemporaryDirectory(prefix="fanmeter-console-bench-") as data_dir:
            asyncio.run(_serve_and_measure(url, tokens, args, Path(data_dir), now))
    finally:
        drop()


def _database(pg_url: str, keep: str | None):  # type: ignore[no-untyped-def]
    """The bench's database: a fresh one dropped afterwards, or ``keep`` (seeded only when new)."""
    name = keep or f"fanmeter_bench_console_{uuid.uuid4().hex[:8]}"
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise SystemExit(f"--keep takes a plain database name, not {name!r}")
    server = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first() is not None
        if not exists:
            conn.execute(text(f"CREATE DATABASE {name}"))
    seeded = exists and keep is not None
    if seeded:
        with create_engine(make_url(pg_url).set(database=name)).connect() as conn:
            seeded = conn.execute(text("SELECT count(*) FROM account")).scalar_one() > 0

    def drop() -> None:
        if keep is None:
            with server.connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        server.dispose()

    return make_url(pg_url).set(database=name).render_as_string(hide_password=False), drop, not seeded


def _tokens(url: str, now: datetime) -> dict[str, str]:
    """New tokens for the bench's finance person and engineer in a kept database."""
    engine = make_engine(url)
    tokens = {}
    with Session(engine) as session:
        for user in session.scalars(select(User).where(User.email.in_(["finance@bench.test", "engineer@bench.test"]))):
            tokens[user.role] = issue(
                session, kind="user", name="bench", now=now, user_id=user.id, account_id=user.account_id
            ).secret
        session.commit()
    engine.dispose()
    return tokens


def _seed(url: str, args: argparse.Namespace, now: datetime) -> dict[str, str]:
    started = time.perf_counter()
    engine = make_engine(url)
    rng = random.Random(7)
    first = now.date() - timedelta(days=args.days - 1)
    columns = "account_id, service_id, day, connection_minutes, messages_published, messages_delivered, bytes_out"
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO account (id, name, plan, currency, created_at) VALUES (:id, :name, :plan, 'USD', 0)"),
            [
                {"id": f"acc-{i:05d}", "name": f"Customer {i:05d}", "plan": "trial" if i % 10 == 0 else "paid"}
                for i in range(args.accounts)
            ],
        )
        with conn.connection.cursor().copy(f"COPY usage_daily ({columns}) FROM STDIN") as copy:
            for a in range(args.accounts):
                size = rng.randint(1, 50)
                for d in range(args.days):
                    weekday = 0.6 if (first + timedelta(days=d)).weekday() >= 5 else 1.0
                    copy.write_row(
                        (f"acc-{a:05d}", f"svc-{a:05d}", first + timedelta(days=d),
                         int(size * 20_000 * weekday), int(size * 5_000 * weekday), int(size * 50_000 * weekday),
                         int(size * 4 * 10**9 * weekday))
                    )  # fmt: skip
    seeded = time.perf_counter()
    last = previous_month(Month.of(to_micros(now)))
    with engine.begin() as conn:
        run = statements.build_drafts(conn, last, now)
    with engine.begin() as conn:  # a bench shortcut: 40 % of last month marked finalized (numbers unique)
        conn.execute(
            update(StatementRecord)
            .where(StatementRecord.month == str(last), StatementRecord.id % 5 < 2)
            .values(status="finalized", number=text(f"'FM-{last}-' || lpad(id::text, 6, '0')"),
                    content_hash="0" * 64, finalized_at=now, finalized_by="bench")
        )  # fmt: skip
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))  # what autovacuum does on a live system after a bulk load
    tokens = {}
    with Session(engine) as session:
        for role, account in (("finance", None), ("engineer", "acc-00042")):
            user = accounts.create_user(
                session, SEEDER, account_id=account, email=f"{role}@bench.test", role=role, now=now
            )
            tokens[role] = issue(
                session, kind="user", name="bench", now=now, user_id=user.id, account_id=account
            ).secret
        session.commit()
    engine.dispose()
    print(
        f"seeded {args.accounts * args.days:,} usage_daily rows ({args.accounts:,} accounts x {args.days} days) in "
        f"{seeded - started:.0f} s; {run.created:,} drafts of {last} in {time.perf_counter() - seeded:.1f} s"
    )
    return tokens


async def _sign_in(client: httpx.AsyncClient, token: str) -> None:
    page = await client.get("/console/sign-in")
    form = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert form, page.text
    answer = await client.post("/console/sign-in", data={"csrf_token": form.group(1), "token": token})
    assert answer.status_code == 200 and "Sign out" in answer.text, answer.text[:300]


async def _serve_and_measure(
    url: str, tokens: dict[str, str], args: argparse.Namespace, data_dir: Path, now: datetime
) -> None:
    this, last = Month.of(to_micros(now)), previous_month(Month.of(to_micros(now)))
    rng = random.Random(3)
    pages = {
        "statements, first page": ("finance", lambda: f"/console/statements?month={last}"),
        "statements, search": ("finance", lambda: f"/console/statements?month={last}&q={rng.randint(0, 9999):04d}"),
        "statements, status filter": ("finance", lambda: f"/console/statements?month={last}&status=draft&p=7"),
        "statements, sorted by total": ("finance", lambda: f"/console/statements?month={last}&sort=-total&p=3"),
        "statements, open month": ("finance", lambda: f"/console/statements?month={this}"),
        "one statement": (
            "finance", lambda: f"/console/accounts/acc-{rng.randint(0, args.accounts - 1):05d}/statements/{last}"
        ),
        "usage page (engineer)": ("engineer", lambda: "/console/accounts/acc-00042/usage"),
        "usage page, past month": (
            "finance", lambda: f"/console/accounts/acc-{rng.randint(0, args.accounts - 1):05d}/usage?month={last}"
        ),
    }  # fmt: skip
    with serving_admin(url, data_dir, args.workers, args.source) as (base, server):
        clients = {}
        for role, token in tokens.items():
            clients[role] = httpx.AsyncClient(base_url=base, timeout=30, follow_redirects=True)
            await _sign_in(clients[role], token)
        print(
            f"{args.clients} concurrent clients, {args.workers} server processes, {args.requests} requests a page, "
            f"serving {args.source or 'this checkout'}"
        )
        for name, (role, path) in pages.items():
            if args.only and not any(part in name for part in args.only):
                continue
            await _measure(name, clients[role], path, args, server.pid, url)
        for client in clients.values():
            await client.aclose()


async def _measure(name: str, client: httpx.AsyncClient, path, args, pid: int, url: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(10):  # warm up
        assert (await client.get(path())).status_code == 200
    latencies: list[float] = []
    sizes: list[int] = []
    left = args.requests

    async def one_client() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            started = time.perf_counter()
            answer = await client.get(path())
            latencies.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200, (answer.status_code, answer.text[:300])
            sizes.append(len(answer.content))

    before = cpu_seconds(pid, url)
    await asyncio.gather(*(one_client() for _ in range(args.clients)))
    after = cpu_seconds(pid, url)
    q = statistics.quantiles(latencies, n=100)
    cpu = ", ".join(f"{k} {(after[k] - before[k]) / len(latencies) * 1000:.1f} ms" for k in after)
    print(
        f"  {name:<28} p50 {q[49]:6.1f} ms  p95 {q[94]:6.1f} ms  max {max(latencies):6.1f} ms  "
        f"HTML {max(sizes) / 1000:5.1f} KB  CPU/request: {cpu}"
    )


if __name__ == "__main__":
    main()
