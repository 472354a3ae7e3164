"""Benchmark: the usage API over real HTTP with a year of daily rollups for 1,000 accounts.

Seeds a fresh database (PostgreSQL by default; ``--embedded`` for SQLite) with ``--accounts``
accounts x ``--services`` services x ``--days`` days of ``usage_daily`` rows, starts
``fanmeter admin`` (``--workers`` processes), and drives ``GET /v1/accounts/{id}/usage?month=``
for random accounts and months with wrk (``apt-get install wrk``): ``--connections`` concurrent
clients for ``--duration`` seconds. Prints requests/s and latency p50/p95/p99 as wrk measured them.
Goal (issue "Admin service"): p95 under 50 ms at 20 concurrent clients.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from billing import accounts
from billing.access import issue
from billing.domain.roles import Principal
from fanmeter import migrate
from kernel.db import make_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.admin_server import cpu_seconds, serving_admin  # noqa: E402

FIRST_DAY = date(2025, 1, 1)
SEEDER = Principal(token_id="bench", kind="user", role="admin", user_id="bench")
WRK_SCRIPT = """
math.randomseed(42)
local paths = {}
for i = 1, 5000 do
  local account = string.format("acc-%05d", math.random(0, ACCOUNTS - 1))
  local month = string.format("2025-%02d", math.random(1, 12))
  paths[i] = "/v1/accounts/" .. account .. "/usage?month=" .. month
end
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n % 5000) + 1], {["Authorization"] = "Bearer TOKEN"})
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors=%d p50=%.2f p95=%.2f p99=%.2f max=%.2f\\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--services", type=int, default=2)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--embedded", action="store_true", help="SQLite instead of PostgreSQL")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="fanmeter-usage-bench-") as data_dir:
        url, drop = _database(args, Path(data_dir))
        try:
            migrate.upgrade(url)
            token = _seed(url, args)
            _serve_and_measure(url, token, args, Path(data_dir))
        finally:
            drop()


def _database(args: argparse.Namespace, data_dir: Path):  # type: ignore[no-untyped-def]
    if args.embedded:
        return f"sqlite:///{data_dir / 'fanmeter.db'}", lambda: None
    name = f"fanmeter_bench_usage_{uuid.uuid4().hex[:8]}"
    server = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))

    def drop() -> None:
        with server.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        server.dispose()

    return make_url(args.pg_url).set(database=name).render_as_string(hide_password=False), drop


def _seed(url: str, args: argparse.Namespace) -> str:
    started = time.perf_counter()
    engine = make_engine(url)
    now = datetime.now(UTC)
    with Session(engine) as session:
        user = accounts.create_user(session, SEEDER, account_id=None, email="bench@x.test", role="finance", now=now)
        token = issue(session, kind="user", name="bench", now=now, user_id=user.id).secret
        session.commit()
    rng = random.Random(7)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO account (id, name, plan, currency, created_at) VALUES (:id, :id, 'paid', 'USD', 0)"),
            [{"id": f"acc-{i:05d}"} for i in range(args.accounts)],
        )
        rows = (
            (f"acc-{a:05d}", f"svc-{s}", FIRST_DAY + timedelta(days=d), *(rng.randint(0, 10**6) for _ in range(4)))
            for a in range(args.accounts)
            for s in range(args.services)
            for d in range(args.days)
        )
        _insert_usage(conn, rows)
    engine.dispose()
    total = args.accounts * args.services * args.days
    print(f"seeded {total:,} usage_daily rows ({args.accounts:,} accounts) in {time.perf_counter() - started:.1f} s")
    return token


def _insert_usage(conn, rows) -> None:  # type: ignore[no-untyped-def]
    columns = "account_id, service_id, day, connection_minutes, messages_published, messages_delivered, bytes_out"
    if conn.dialect.name == "postgresql":
        with conn.connection.cursor().copy(f"COPY usage_daily ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    conn.exec_driver_sql(
        f"INSERT INTO usage_daily ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(a, s, d.isoformat(), *v) for a, s, d, *v in rows],
    )


def _serve_and_measure(url: str, token: str, args: argparse.Namespace, data_dir: Path) -> None:
    with serving_admin(url, data_dir, args.workers) as (base, server):
        sample = httpx.get(
            f"{base}/v1/accounts/acc-00000/usage?month=2025-06", headers={"Authorization": f"Bearer {token}"}
        )
        assert sample.status_code == 200 and sample.json()["services"], sample.text
        script = data_dir / "usage.lua"
        script.write_text(WRK_SCRIPT.replace("ACCOUNTS", str(args.accounts)).replace("TOKEN", token))
        subprocess.run(
            ["wrk", f"-t{min(2, args.connections)}", f"-c{args.connections}", "-d2s", "-s", str(script), base],
            capture_output=True,
        )
        before = cpu_seconds(server.pid, url)
        result = subprocess.run(
            [
                "wrk",
                f"-t{min(2, args.connections)}",
                f"-c{args.connections}",
                f"-d{args.duration}s",
                "-s",
                str(script),
                base,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        after = cpu_seconds(server.pid, url)
        _report(result.stdout, args, {group: after[group] - before.get(group, 0.0) for group in after})


def _report(wrk_output: str, args: argparse.Namespace, cpu: dict[str, float]) -> None:
    match = re.search(r"RESULT (.*)", wrk_output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", wrk_output)
    assert match and rate, wrk_output
    figures = dict(item.split("=") for item in match.group(1).split())
    print(
        f"usage API, {args.connections} concurrent clients, {args.workers} server process(es), {args.duration} s: "
        f"{float(rate.group(1)):,.0f} requests/s, {int(figures['requests']):,} requests, {figures['errors']} errors; "
        f"latency p50 {figures['p50']} ms, p95 {figures['p95']} ms, p99 {figures['p99']} ms, max {figures['max']} ms "
        f"(goal: p95 < 50 ms); load average {os.getloadavg()[0]:.2f}"
    )
    requests = int(figures["requests"])
    if requests and not args.embedded:
        print(
            "CPU per request: "
            + ", ".join(f"{group} {seconds / requests * 1000:.2f} ms" for group, seconds in cpu.items())
            + " (PostgreSQL: the backends serving the benchmark's database)"
        )


if __name__ == "__main__":
    main()
