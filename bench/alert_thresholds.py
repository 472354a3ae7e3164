"""Part d of bench/ingest.py (``--alert-thresholds``): does checking usage alerts slow ingest down?

Alternating end-to-end runs of ``fanmeter ingest`` in one session, each on a fresh database:
without thresholds, with them, with, without, ... (``--alert-rounds`` pairs, in ABBA order so
that neither side always runs first). Every run has the
same 10,000 accounts (``acct-0000`` ... ``acct-9999``; the event file uses the first 40); the runs
with thresholds give each account 3 (messages, connection minutes, projected month-end amount),
set so that some of the busy accounts cross them during the run. In every run a beat process
sends the checker's task ``billing.tasks.check_usage_alerts`` to the worker every
``--alert-interval`` seconds (2 s by default, against production's 60 s: a harder test), with
``now`` inside the file's window (2026-02-01T12:00Z, so February and, in its grace period,
January are checked), exactly as the beat does in production but for that instant.

Printed: each run's rate and CPU per event, the checker's passes and crossings (from the
worker's log), and the ratio of the mean rates with and without thresholds (the goal: >= 0.9).
"""

from __future__ import annotations

import ast
import re
import statistics
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ACCOUNTS = 10_000
CHECK_NOW = "2026-02-01T12:00:00+00:00"
# Limits a few of the 40 busy accounts of the event file reach during a run, most never do.
LIMITS = (("messages", "50000"), ("connection_minutes", "5000"), ("projected_amount", "2.00"))
_BEAT = (
    "import sys, time\n"
    "from fanmeter.pipeline import compose\n"
    "from metering.settings import MeteringSettings\n"
    "app = compose(MeteringSettings())\n"
    "while True:\n"
    "    app.send_task('billing.tasks.check_usage_alerts', kwargs={'now': sys.argv[2]})\n"
    "    time.sleep(float(sys.argv[1]))\n"
)
_CHECK_LINE = re.compile(r"Task billing\.tasks\.check_usage_alerts\[[^\]]+\] succeeded in ([\d.]+)s: (\{.*\})")


def seed(url: str, with_thresholds: bool) -> None:
    """Write the 10,000 accounts (and their 3 thresholds each) into a migrated database, in bulk."""
    from sqlalchemy import insert

    from billing.alerts.orm import UsageThreshold
    from billing.orm import Account
    from kernel.db import make_engine

    now = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [f"acct-{n:04d}" for n in range(ACCOUNTS)]
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(Account),
                [{"id": a, "name": a, "plan": "paid", "currency": "USD", "created_at": now} for a in ids],
            )
            if with_thresholds:
                rows = [
                    {"id": f"thr-{a}-{measure}", "account_id": a, "measure": measure, "limit_value": Decimal(limit),
                     "name": measure, "created_at": now, "created_by": "bench", "removed_at": None}
                    for a in ids for measure, limit in LIMITS
                ]  # fmt: skip
                conn.execute(insert(UsageThreshold), rows)
    finally:
        engine.dispose()


def start_beat(env: dict[str, str], interval: float, repo: Path) -> Callable[[], None]:
    """Start a process sending the checker's task every ``interval`` seconds, as the beat does; return its stop."""
    process = subprocess.Popen(
        [sys.executable, "-c", _BEAT, str(interval), CHECK_NOW],
        env=env,
        cwd=repo,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def stop() -> None:
        process.terminate()
        process.wait(timeout=30)

    return stop


def checker_passes(worker_log: Path) -> tuple[int, int, int, float]:
    """(passes, accounts checked, crossings fired, mean seconds per pass) from the worker's log."""
    passes = checked = fired = 0
    seconds: list[float] = []
    for took, result in _CHECK_LINE.findall(worker_log.read_text(errors="replace")):
        passes += 1
        outcome = ast.literal_eval(result)
        checked += int(outcome["checked"])
        fired += int(outcome["fired"])
        seconds.append(float(took))
    return passes, checked, fired, statistics.mean(seconds) if seconds else 0.0


def compare(
    label: str, rounds: int, interval: float, one_run: Callable[[str, Callable[[dict[str, str]], Any]], Any]
) -> list[tuple[str, str, str, str]]:
    """Alternate runs without and with thresholds; print each and the ratio of the mean rates.

    ``one_run(name, prepare)`` runs one end to end on a fresh database and returns its
    ``E2EResult``; it calls ``prepare(env)`` after migrating, before the worker starts, and
    calls what that returns once the run is over.
    """
    rates: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    for index in range(2 * rounds):
        with_thresholds = index % 4 in (1, 2)  # ABBA: none, thresholds, thresholds, none, ...: no side goes first
        name = f"{label}-{'thresholds' if with_thresholds else 'none'}-{index // 2 + 1}"
        print(f"\n== d. {name}: {ACCOUNTS:,} accounts, {3 * ACCOUNTS if with_thresholds else 0:,} thresholds")
        logs: list[Path] = []

        def prepare(
            env: dict[str, str], with_thresholds: bool = with_thresholds, logs: list[Path] = logs
        ) -> Callable[[], None]:
            seed(database_url(env), with_thresholds)
            logs.append(Path(env["FANMETER_DATA_DIR"]) / "worker.log")
            return start_beat(env, interval, Path(__file__).resolve().parents[1])

        result = one_run(name, prepare)
        passes, checked, fired, mean_s = checker_passes(logs[0])
        used = sum(sum(v) for role, v in result.cpu.items() if role != "this benchmark")
        per_event = 1e6 * used / result.events
        print(
            f"  checker: {passes} passes (every {interval:g} s), {checked} accounts checked, {fired} crossings fired, "
            f"{mean_s * 1000:.0f} ms "
            f"a pass; CPU {per_event:.0f} us per event (worker, CLI, database and broker processes)"
        )
        rates[with_thresholds].append(result.rate)
        cpu[with_thresholds].append(per_event)
    base, alerts = statistics.mean(rates[False]), statistics.mean(rates[True])
    ratios = [with_ / without for without, with_ in zip(rates[False], rates[True], strict=True)]
    pairs = [f"{ratio:.2f}" for ratio in ratios]
    cpu_base, cpu_alerts = statistics.mean(cpu[False]), statistics.mean(cpu[True])
    print(
        f"\n== d. {label}: runs without thresholds {', '.join(f'{r:,.0f}' for r in rates[False])} events/s, "
        f"with {', '.join(f'{r:,.0f}' for r in rates[True])}; ratio of the means {alerts / base:.3f} "
        f"(goal >= 0.9), per pair {', '.join(pairs)} (median {statistics.median(ratios):.2f}); "
        f"CPU {cpu_base:.0f} vs {cpu_alerts:.0f} us per event "
        f"({cpu_alerts / cpu_base:.3f}: on a shared machine the steadier figure)"
    )
    return [
        (f"d. {label} no thresholds", f"{base:,.0f} events/s", f"x{rounds}", ""),
        (f"d. {label} 30k thresholds", f"{alerts:,.0f} events/s", f"x{rounds}", f"ratio {alerts / base:.3f}"),
    ]


def run_all(ingest: Any, args: Any, path: Path, meta: dict[str, Any], run_id: str, work: Path) -> list[Any]:
    """Part d on the embedded default and (unless skipped) PostgreSQL + RabbitMQ; the summary's rows."""
    rows: list[Any] = []
    if not args.skip_embedded:

        def embedded(name: str, prepare: Callable[[dict[str, str]], Any]) -> Any:
            data = work / name
            env = {"FANMETER_DATA_DIR": str(data), "FANMETER_CELERY_QUEUE": f"bench-{run_id}-{name}"}
            counter = ingest._sqlite_batch_counter(data / "fanmeter.db")
            return ingest.run_e2e(name, env, path, meta, args.batch_size, args.timeout, None, counter, prepare=prepare)

        rows += compare("embedded", args.alert_rounds, args.alert_interval, embedded)
    if not args.skip_postgres:

        def postgres(name: str, prepare: Callable[[dict[str, str]], Any]) -> Any:
            queue = f"bench-{run_id}-{name}"
            try:
                with ingest.fresh_pg_database(args.pg_url, "alerts") as url:
                    env = {"FANMETER_DATA_DIR": str(work / name), "FANMETER_DATABASE_URL": url,
                           "FANMETER_CELERY_BROKER_URL": args.amqp_url, "FANMETER_CELERY_QUEUE": queue}  # fmt: skip
                    return ingest.run_e2e(name, env, path, meta, args.batch_size, args.timeout, None,
                                          ingest._pg_batch_counter(url), database=url.rsplit("/", 1)[1],
                                          prepare=prepare)  # fmt: skip
            finally:
                ingest._delete_queue(args.amqp_url, queue)

        rows += compare("postgres", args.alert_rounds, args.alert_interval, postgres)
    return rows


def database_url(env: dict[str, str]) -> str:
    """The run's database: its PostgreSQL URL, or the embedded default's SQLite file in its data directory."""
    return env.get("FANMETER_DATABASE_URL") or f"sqlite:///{Path(env['FANMETER_DATA_DIR']) / 'fanmeter.db'}"
