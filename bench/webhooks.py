"""Webhook delivery throughput: one delivery pass over a backlog, to real receivers on loopback.

What it measures
  A freshly migrated database (SQLite in a temporary directory, or --database-url's PostgreSQL,
  in a database of its own that is dropped afterwards) with E endpoints (default 4) of one
  account, each subscribed to every event type, and N events (default 2,000) recorded through
  ``billing.webhooks.outbox.record_events`` (timed: the outbox's write cost per event, with its
  E deliveries). Each endpoint's receiver is a separate process (``http.server`` answering 204),
  so its CPU is not counted. Then one ``deliver_due`` pass (the beat task's service) sends the
  whole backlog, every endpoint in its own thread, each event signed and POSTed on a kept-alive
  connection. Printed: deliveries/s, wall time, and CPU seconds of this process (the sender, its
  threads and SQLite) per delivery; with PostgreSQL, its backends' CPU is added (from
  pg_stat_activity pids and /proc).

How to run (from the repository root):
    .venv/bin/python bench/webhooks.py
    .venv/bin/python bench/webhooks.py --events 5000 --endpoints 8
    .venv/bin/python bench/webhooks.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from billing.domain.roles import Principal  # noqa: E402
from billing.orm import Account  # noqa: E402
from billing.webhooks import endpoints, events, outbox  # noqa: E402
from billing.webhooks.delivery import DeliveryConfig, deliver_due  # noqa: E402
from fanmeter import migrate  # noqa: E402
from kernel.db import make_engine  # noqa: E402
from kernel.network_policy import parse_allowed_networks  # noqa: E402

RECEIVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(server.server_address[1], flush=True)
server.serve_forever()
"""
ACCOUNT = "acc_bench"
SUPERUSER = Principal(token_id="bench", kind="user", role="superuser", account_id=ACCOUNT, user_id="bench")
LOOPBACK = endpoints.UrlPolicy(parse_allowed_networks("127.0.0.0/8"))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def backend_cpu(engine_url: str) -> float:
    """CPU seconds of the PostgreSQL backends serving this database (0 for SQLite)."""
    if not engine_url.startswith("postgresql"):
        return 0.0
    engine = create_engine(engine_url)
    with engine.connect() as conn:
        pids = conn.scalars(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")).all()
    engine.dispose()
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def start_receivers(count: int) -> tuple[list[subprocess.Popen[str]], list[int]]:
    processes, ports = [], []
    for _ in range(count):
        process = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        ports.append(int(process.stdout.readline()))
        processes.append(process)
    return processes, ports


def run(url: str, event_count: int, endpoint_count: int) -> None:
    migrate.upgrade(url)
    engine = make_engine(url)
    receivers, ports = start_receivers(endpoint_count)
    try:
        now = datetime.now(UTC)
        with Session(engine, expire_on_commit=False) as session:
            session.add(Account(id=ACCOUNT, name="Bench", plan="paid", currency="USD", created_at=now))
            session.commit()
            for port in ports:
                endpoints.register(
                    session,
                    SUPERUSER,
                    ACCOUNT,
                    f"http://127.0.0.1:{port}/hooks",
                    list(events.EVENT_TYPES),
                    "",
                    LOOPBACK,
                    now,
                )
        batch = [
            outbox.NewEvent(events.STATEMENT_FINALIZED, ACCOUNT, {"account_id": ACCOUNT, "total": "12.34", "n": n})
            for n in range(event_count)
        ]
        started, cpu = time.perf_counter(), cpu_seconds()
        with engine.begin() as conn:
            outbox.record_events(conn, batch)
        record_s, record_cpu = time.perf_counter() - started, cpu_seconds() - cpu
        config = DeliveryConfig(urls=LOOPBACK, max_per_endpoint=event_count + 1)
        pg_before = backend_cpu(url)
        started, cpu = time.perf_counter(), cpu_seconds()
        result = deliver_due(engine, config)
        wall, sender_cpu = time.perf_counter() - started, cpu_seconds() - cpu
        pg_cpu = backend_cpu(url) - pg_before
    finally:
        for process in receivers:
            process.terminate()
            process.wait()
        engine.dispose()
    deliveries = result.delivered
    assert deliveries == event_count * endpoint_count, result
    print(f"database: {make_url(url).get_backend_name()}; {event_count} events x {endpoint_count} endpoints")
    print(f"record_events: {record_s:.2f} s, {record_cpu / event_count * 1e6:.0f} us CPU per event")
    print(f"delivery pass: {deliveries} deliveries in {wall:.2f} s = {deliveries / wall:.0f} deliveries/s")
    print(f"  CPU per delivery: sender {sender_cpu / deliveries * 1e6:.0f} us", end="")
    print(f", PostgreSQL backends {pg_cpu / deliveries * 1e6:.0f} us" if pg_cpu else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--endpoints", type=int, default=4)
    parser.add_argument("--database-url", help="a PostgreSQL server URL (a database of its own is made on it)")
    args = parser.parse_args()
    if args.database_url is None:
        with tempfile.TemporaryDirectory() as directory:
            run(f"sqlite:///{directory}/bench.db", args.events, args.endpoints)
        return
    name = f"fanmeter_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(args.database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        run(
            make_url(args.database_url).set(database=name).render_as_string(hide_password=False),
            args.events,
            args.endpoints,
        )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


if __name__ == "__main__":
    main()
