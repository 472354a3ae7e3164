"""A long soak (an hour or more) of the whole stack: broker, outbox, shipper, pipeline, rollups, drafts.

What it runs (tests/faults/soak.py, the same code as the faults tier's one-minute soak, longer):
  a fresh PostgreSQL database (migrated), a Celery queue of its own on RabbitMQ, the gripcontrol
  origin, one `fanmeter broker` node shipping its outbox, one `fanmeter worker` (concurrency 2),
  and statement drafts of the month rebuilt from the usage every --draft-every seconds. Traffic:
  one item per account per --tick seconds to a channel every client of the account holds
  (--streams HTTP streams and --sockets WebSockets per account), and one connection replaced
  every --churn seconds (each lives under a minute, so each is one connection minute).
What it prints (and writes, sample by sample, to --samples as JSON lines):
  duration, items published, deliveries, connections, bytes; peak RSS per process role (broker,
  worker parent, worker pool children summed, origin); the largest outbox depth and pipeline lag
  (seconds from a publish's 200 to its count in usage); each series' first-half and second-half
  means after a 20 % warm-up and its least-squares slope per hour; and whether the pipeline's
  usage of every account equals the client-side tally once drained (differences: 0 expected).
  Exits 1 on a difference.

Run from the repository root (needs PostgreSQL and RabbitMQ; restarts neither):
    .venv/bin/python bench/soak.py                                   # one hour
    .venv/bin/python bench/soak.py --duration 120 --samples /tmp/soak.jsonl
    nohup .venv/bin/python bench/soak.py --duration 3900 > /tmp/soak.out 2>&1 &
This is a benchmark, not a test: pytest does not collect it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import tempfile
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fanmeter import migrate  # noqa: E402
from tests.faults.soak import (  # noqa: E402
    Sample,
    SoakShape,
    add_accounts,
    engine_for,
    halves,
    run_traffic,
    slope_per_hour,
    soak_stack,
)
from tests.stack import stack_environment  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3600.0, help="seconds of traffic (default 3600)")
    parser.add_argument("--accounts", type=int, default=3)
    parser.add_argument("--streams", type=int, default=20, help="HTTP streams held per account")
    parser.add_argument("--sockets", type=int, default=10, help="WebSockets held per account")
    parser.add_argument("--tick", type=float, default=0.1, help="seconds between items (one per account)")
    parser.add_argument("--churn", type=float, default=0.4, help="seconds between connection replacements")
    parser.add_argument("--sample-every", type=float, default=10.0)
    parser.add_argument("--draft-every", type=float, default=60.0)
    parser.add_argument("--alive", type=int, default=15, help="FANMETER_ALIVE_INTERVAL_SECONDS")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--samples", type=Path, default=Path("/tmp/fanmeter-soak-samples.jsonl"))
    args = parser.parse_args()
    shape = SoakShape(
        duration_s=args.duration, accounts=args.accounts, streams_per_account=args.streams,
        sockets_per_account=args.sockets, tick_s=args.tick, churn_every_s=args.churn, min_life_s=5.0,
        sample_every_s=args.sample_every, draft_every_s=args.draft_every, drain_timeout_s=600.0,
    )  # fmt: skip
    life = max(shape.min_life_s, args.accounts * (args.streams + args.sockets) * args.churn)
    if life >= 50:
        parser.error(
            f"connections would live about {life:.0f} s: keep them under a minute (fewer clients, faster churn)"
        )
    name = f"fanmeter_soak_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(args.pg_url).set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        with tempfile.TemporaryDirectory(prefix="fanmeter-soak-") as tmp:
            data = Path(tmp)
            env = {**stack_environment(data), "FANMETER_DATABASE_URL": url, "FANMETER_CELERY_BROKER_URL": args.amqp_url,
                   "FANMETER_ALIVE_INTERVAL_SECONDS": str(args.alive)}  # fmt: skip
            accounts = [f"soak-{uuid.uuid4().hex[:6]}" for _ in range(args.accounts)]
            engine = engine_for(url)
            add_accounts(engine, accounts)
            args.samples.write_text("")

            def log(sample: Sample) -> None:
                with args.samples.open("a") as out:
                    out.write(json.dumps(dataclasses.asdict(sample)) + "\n")

            with soak_stack(env, data, accounts) as (node, pids):
                report = asyncio.run(run_traffic(node, pids, engine, env, accounts, shape, log))
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    print(json.dumps(report.summary(), indent=2))  # noqa: T201
    times = [s.at_s for s in report.samples]
    for series in [*sorted(report.peak_rss_mb), "outbox_depth", "lag_s"]:
        values = report.series(series)
        first, second = halves(values)
        print(f"{series:>16}: first half {first:10.2f}  second half {second:10.2f}  "  # noqa: T201
              f"slope {slope_per_hour(values, times):+10.2f}/h  max {max(values):10.2f}")  # fmt: skip
    for line in report.differences:
        print("difference:", line)  # noqa: T201
    return 1 if report.differences else 0


if __name__ == "__main__":
    raise SystemExit(main())
