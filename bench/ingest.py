"""Ingest throughput of the metering pipeline: raw PostgreSQL rate and `fanmeter ingest` end to end.

What it measures
  0. generate: a CloudEvents JSON-lines file of N events (default 1,000,000), written streaming
     (only the open connections, a ring of recent lines for duplicates and a small late-event heap
     are held in memory). The mix is realistic: connections open -> alive every 60 s with cumulative
     bytes_out/bytes_in -> close (2 % lost: no close); 55 % are long-poll holds under 55 s, 30 % last
     minutes, 13 % hours, 2 % days;
     message.published items each followed by message.delivered events from 1-4 nodes; ~0.5 % of
     events shipped late (up to 5 min out of order); a few % exact duplicates (some far apart);
     48 hours starting 2026-01-31T00:00Z, so the January/February boundary is crossed.
     A sidecar FILE.meta.json holds the counts (unique events, duplicates, per type, per month).
  a. raw:   the database ceiling on PostgreSQL. Every line is decoded with the pipeline's own
     ``decode_event`` (timed separately: the Python validation rate of one core), then, timed,
     COPY'd in 10,000-row batches into a temporary table and merged with
     ``INSERT INTO raw_event ... SELECT ... ORDER BY source, event_id ON CONFLICT DO NOTHING``
     into a freshly migrated raw_event table (unique (source, event_id)), one transaction per
     batch, exactly the statement shape of ``metering.repository.insert_events``.
  b. e2e on PostgreSQL + RabbitMQ: a fresh database, ``fanmeter db upgrade``, a
     ``fanmeter worker --concurrency 2 --no-beat`` subprocess, and ``fanmeter ingest FILE`` timed
     as a subprocess from start until it returns (file read, every batch ingested, every
     connection rolled up). Prints events/s, when the send phase ended, when the last batch was
     ingested (polled from ingest_batch) and the peak RSS (VmHWM from /proc/<pid>/status, and
     wait4's ru_maxrss for the CLI) of the CLI, the worker parent and each worker child.
  c. the same end to end on the embedded default: SQLite file database and Celery over SQLite,
     no URLs set, in a data directory of its own.
  After each end-to-end run the CLI's ``accepted + duplicates`` must equal N (and ``accepted``
  the number of distinct events, ``rejected`` 0), otherwise the benchmark fails loudly.

Isolation: everything runs in its own FANMETER_DATA_DIR (default /tmp/fanmeter-bench), its own
Celery queue (bench-<random>) and its own PostgreSQL databases (fanmeter_bench_<random>), which
are dropped afterwards; the RabbitMQ queue is deleted; every process started is stopped.

How to run (from the repository root; PostgreSQL on 127.0.0.1:5432 and RabbitMQ on 5672):
    .venv/bin/python bench/ingest.py                       # 1,000,000 events, all three parts
    .venv/bin/python bench/ingest.py --events 100000 --skip-embedded
    .venv/bin/python bench/ingest.py --file /tmp/fanmeter-bench/events-1000000.jsonl --skip-raw
    .venv/bin/python bench/ingest.py --py-spy /tmp/bench-tools/bin/py-spy   # also profile the worker
Options: --events N, --batch-size B (events per Celery message, default: the CLI's own, i.e.
FANMETER_INGEST_BATCH_SIZE or 5000), --skip-raw, --skip-postgres, --skip-embedded, --raw-batch,
--pg-url, --amqp-url, --data-dir, --keep (keep the data directory and generated file).
This is a benchmark, not a test: pytest does not collect it.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PY = sys.executable
REPO = Path(__file__).resolve().parent.parent
MICROS = 1_000_000
MINUTE_US = 60 * MICROS
HOUR_US = 3600 * MICROS
DAY_US = 24 * HOUR_US
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WINDOW_START = datetime(2026, 1, 31, tzinfo=UTC)
WINDOW_START_US = (WINDOW_START - EPOCH) // timedelta(microseconds=1)
WINDOW_US = 48 * HOUR_US
ALIVE_US = 60 * MICROS
NODES = [f"broker/node-{i}" for i in range(1, 5)]
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672//"


# --- generating the event file ------------------------------------------------------------------


def _iso(us: int) -> str:
    return (EPOCH + timedelta(microseconds=us)).isoformat(timespec="microseconds")[:-6] + "Z"


def _duration_us(rng: random.Random) -> tuple[int, str]:
    """A connection's lifetime and transport: long-poll holds, minutes, hours, days."""
    r = rng.random()
    if r < 0.55:
        return int(rng.uniform(1, 55) * MICROS), "long-poll"
    transport = rng.choice(("sse", "http-stream", "websocket"))
    if r < 0.85:
        low, high = 60, 3600
    elif r < 0.98:
        low, high = 3600, 12 * 3600
    else:
        low, high = 12 * 3600, 3 * 86400
    return int(math.exp(rng.uniform(math.log(low), math.log(high))) * MICROS), transport


@dataclass
class _Conn:
    account_id: str
    service_id: str
    connection_id: str
    node: str
    end_us: int
    lost: bool
    bytes_out: int = 0
    bytes_in: int = 0


def _event(event_id: str, source: str, type_: str, t_us: int, service_id: str, data: str) -> str:
    return (
        f'{{"specversion":"1.0","id":"{event_id}","source":"{source}","type":"fanout.{type_}",'
        f'"time":"{_iso(t_us)}","subject":"{service_id}","datacontenttype":"application/json","data":{{{data}}}}}'
    )


def _unique_events(rng: random.Random, n_unique: int, stats: Counter[str]) -> Iterator[tuple[int, str]]:
    """Distinct events in (roughly) time order; rates are scaled so ~n_unique events span WINDOW_US."""
    accounts = []
    for a in range(40):
        services = [f"svc-{rng.getrandbits(64):016x}" for _ in range(rng.randint(1, 3))]
        accounts.append((f"acct-{a:04d}", services))
    weights = [1 / (i + 1) for i in range(len(accounts))]  # a few big accounts, a long tail
    cum = [sum(weights[: i + 1]) for i in range(len(weights))]

    def new_id() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    probe = random.Random(1)
    mean_conn_events = 2 + sum(min(_duration_us(probe)[0], WINDOW_US // 2) // ALIVE_US for _ in range(20000)) / 20000
    message_share = 0.30
    rate_per_us = n_unique / WINDOW_US
    conn_gap_us = mean_conn_events / ((1 - message_share) * rate_per_us)
    publish_gap_us = 3.5 / (message_share * rate_per_us)  # 1 published + 2.5 delivered on average

    heap: list[tuple[int, int, int, Any]] = []  # (time, seq, kind, connection)
    seq = 0
    ARRIVE, PUBLISH, ALIVE, CLOSE = 0, 1, 2, 3
    heapq.heappush(heap, (WINDOW_START_US, 0, ARRIVE, None))
    heapq.heappush(heap, (WINDOW_START_US, 1, PUBLISH, None))
    seq = 2
    while True:
        t, _, kind, conn = heapq.heappop(heap)
        if kind == ARRIVE:
            account_id, services = rng.choices(accounts, cum_weights=cum)[0]
            service_id = rng.choice(services)
            duration, transport = _duration_us(rng)
            lost = rng.random() < 0.02
            conn = _Conn(
                account_id, service_id, f"conn-{rng.getrandbits(64):016x}", rng.choice(NODES), t + duration, lost
            )
            stats["connections"] += 1
            stats["lost_connections"] += lost
            yield t, _event(
                new_id(), conn.node, "connection.open", t, service_id,
                f'"account_id":"{account_id}","service_id":"{service_id}","connection_id":"{conn.connection_id}",'
                f'"transport":"{transport}"',
            )  # fmt: skip
            first_alive = t + ALIVE_US - rng.randint(0, 2 * MICROS)
            heapq.heappush(
                heap, (min(first_alive, conn.end_us), seq, ALIVE if first_alive < conn.end_us else CLOSE, conn)
            )
            heapq.heappush(heap, (t + int(rng.expovariate(1 / conn_gap_us)) + 1, seq + 1, ARRIVE, None))
            seq += 2
        elif kind in (ALIVE, CLOSE):
            conn.bytes_out += rng.randint(0, 40_000)
            conn.bytes_in += rng.randint(0, 800)
            counters = f'"bytes_out":{conn.bytes_out},"bytes_in":{conn.bytes_in}'
            key = (
                f'"account_id":"{conn.account_id}","service_id":"{conn.service_id}",'
                f'"connection_id":"{conn.connection_id}"'
            )
            if kind == CLOSE:
                if not conn.lost:  # a lost connection just falls silent
                    reason = rng.choice(("client", "timeout", "origin"))
                    yield t, _event(
                        new_id(), conn.node, "connection.close", t, conn.service_id,
                        f'{key},{counters},"reason":"{reason}"',
                    )  # fmt: skip
                continue
            yield t, _event(new_id(), conn.node, "connection.alive", t, conn.service_id, f"{key},{counters}")
            following = t + ALIVE_US - rng.randint(0, 2 * MICROS)
            nxt = (following, seq, ALIVE, conn) if following < conn.end_us else (conn.end_us, seq, CLOSE, conn)
            heapq.heappush(heap, nxt)
            seq += 1
        else:  # PUBLISH: one item published, then delivered by 1-4 nodes a few ms later
            account_id, services = rng.choices(accounts, cum_weights=cum)[0]
            service_id = rng.choice(services)
            channel = f"ch-{rng.randint(1, 20)}"
            head = f'"account_id":"{account_id}","service_id":"{service_id}","channel":"{channel}"'
            size = rng.randint(50, 4000)
            yield t, _event(
                new_id(), rng.choice(NODES), "message.published", t, service_id,
                f'{head},"count":1,"bytes":{size}',
            )  # fmt: skip
            for k, node in enumerate(rng.sample(NODES, rng.randint(1, 4))):
                fanout = rng.randint(1, 200)
                yield t + (k + 1) * 1000, _event(
                    new_id(), node, "message.delivered", t + (k + 1) * 1000, service_id,
                    f'{head},"count":{fanout},"bytes":{size * fanout}',
                )  # fmt: skip
            heapq.heappush(heap, (t + int(rng.expovariate(1 / publish_gap_us)) + 1, seq, PUBLISH, None))
            seq += 1


def _shipped(rng: random.Random, events: Iterator[tuple[int, str]], stats: Counter[str]) -> Iterator[tuple[int, str]]:
    """The outbox order: ~0.5 % of events arrive up to 5 minutes late (so out of order)."""
    late: list[tuple[int, int, int, str]] = []
    seq = 0
    for t, text in events:
        while late and late[0][0] <= t:
            _, _, t_late, late_text = heapq.heappop(late)
            yield t_late, late_text
        if rng.random() < 0.005:
            stats["late_events"] += 1
            heapq.heappush(late, (t + rng.randint(1, 300) * MICROS, seq, t, text))
            seq += 1
        else:
            yield t, text


def generate(path: Path, n: int, dup_rate: float, seed: int) -> dict[str, Any]:
    """Write n event lines (exactly round(n * dup_rate) of them duplicates) and a meta sidecar."""
    rng = random.Random(seed)
    duplicates = round(n * dup_rate)
    unique = n - duplicates
    stats: Counter[str] = Counter()
    types: Counter[str] = Counter()
    months: Counter[str] = Counter()
    stream = _shipped(rng, _unique_events(rng, unique, stats), stats)
    ring: list[str] = []
    ring_size, ring_pos = 5000, 0
    reservoir: list[str] = []
    seen = 0
    first = last = None
    dups_left, slots_left = duplicates, n
    tmp = path.with_suffix(path.suffix + ".part")
    with tmp.open("w", encoding="utf-8", buffering=1 << 20) as out:
        while slots_left:
            if ring and rng.random() < dups_left / slots_left:
                # a redelivery: usually of a recent event, sometimes of one shipped long before
                pool = reservoir if reservoir and rng.random() < 0.1 else ring
                out.write(pool[rng.randrange(len(pool))])
                dups_left -= 1
            else:
                t, text = next(stream)
                line = text + "\n"
                out.write(line)
                first = t if first is None else min(first, t)
                last = t if last is None else max(last, t)
                types[text[text.index('"type":"') + 8 : text.index('","time"')]] += 1
                months[_iso(t)[:7]] += 1
                if len(ring) < ring_size:
                    ring.append(line)
                else:
                    ring[ring_pos] = line
                    ring_pos = (ring_pos + 1) % ring_size
                seen += 1
                if len(reservoir) < 1000:
                    reservoir.append(line)
                elif (j := rng.randrange(seen)) < 1000:
                    reservoir[j] = line
            slots_left -= 1
    if dups_left:
        raise RuntimeError("generator could not place every duplicate")
    tmp.replace(path)
    meta = {
        "events": n,
        "unique": unique,
        "duplicates": duplicates,
        "seed": seed,
        "first_time": _iso(first or 0),
        "last_time": _iso(last or 0),
        "unique_by_type": dict(sorted(types.items())),
        "unique_by_month": dict(sorted(months.items())),
        **{k: int(v) for k, v in stats.items()},
        "bytes": path.stat().st_size,
    }
    path.with_suffix(path.suffix + ".meta.json").write_text(json.dumps(meta, indent=2))
    return meta


# --- process memory -----------------------------------------------------------------------------


def _proc_status(pid: int) -> dict[str, int]:
    """VmHWM and VmRSS of a process in kB (empty once it is gone)."""
    values: dict[str, int] = {}
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmHWM:", "VmRSS:")):
                name, value = line.split(":", 1)
                values[name] = int(value.split()[0])
    return values


_TICK = os.sysconf("SC_CLK_TCK")


def _scan() -> dict[int, tuple[int, str, float]]:
    """Every process: pid -> (parent pid, command name, CPU seconds used so far)."""
    found: dict[int, tuple[int, str, float]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
            fields = stat[stat.rindex(")") + 2 :].split()
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            found[int(entry.name)] = (int(fields[1]), comm, (int(fields[11]) + int(fields[12])) / _TICK)
    return found


def _descendants(root: int, procs: dict[int, tuple[int, str, float]] | None = None) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in (procs if procs is not None else _scan()).items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / _TICK, sum(values) / _TICK


class ProcessSampler(threading.Thread):
    """Samples peak RSS (VmHWM, the kernel's own high-water mark) and CPU time of the processes we care about.

    Watched: the given root processes and all their descendants, PostgreSQL backends serving the
    benchmark's database (matched on their command line) and the RabbitMQ server (beam.smp, whole server).
    CPU is counted from the baseline sample (processes seen then) or from 0 (processes born later).
    """

    def __init__(self, interval: float = 0.5, database: str | None = None) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.database = database
        self.roots: dict[int, str] = {}
        self.peak_kb: dict[int, int] = {}
        self.role: dict[int, str] = {}
        self.cpu_first: dict[int, float] = {}
        self.cpu_last: dict[int, float] = {}
        self._baseline: set[int] = set()
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self.machine_start = self.machine_end = (0.0, 0.0)

    def watch(self, pid: int, role: str) -> None:
        self.roots[pid] = role

    def baseline(self) -> None:
        self.machine_start = _machine_cpu()
        self.sample(first=True)

    def _role_of(self, pid: int, comm: str) -> str | None:
        if comm == "beam.smp":
            return "rabbitmq server"
        if comm == "postgres" and self.database:
            with suppress(OSError):
                if self.database.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return "postgres backends"
        return None

    def sample(self, first: bool = False) -> None:
        with self._lock:
            procs = _scan()
            watched: dict[int, str] = {}
            for root, role in list(self.roots.items()):
                if root in procs:
                    watched[root] = role
                    watched.update((d, f"{role} children") for d in _descendants(root, procs))
            for pid, (_, comm, _) in procs.items():
                if pid not in watched and pid not in self.role and (matched := self._role_of(pid, comm)):
                    watched[pid] = matched
            watched.update((pid, self.role[pid]) for pid in self.role if pid in procs and pid not in watched)
            for pid, role in watched.items():
                cpu = procs[pid][2]
                self.role.setdefault(pid, role)
                if pid not in self.cpu_first:
                    self.cpu_first[pid] = cpu if first else 0.0
                self.cpu_last[pid] = max(self.cpu_last.get(pid, 0.0), cpu)
                hwm = _proc_status(pid).get("VmHWM")
                if hwm is not None:
                    self.peak_kb[pid] = max(self.peak_kb.get(pid, 0), hwm)

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.sample()
        self.machine_end = _machine_cpu()

    def cpu_by_role(self) -> dict[str, list[float]]:
        by_role: dict[str, list[float]] = {}
        for pid, role in self.role.items():
            by_role.setdefault(role, []).append(self.cpu_last[pid] - self.cpu_first[pid])
        return by_role

    def peaks(self, role: str) -> list[int]:
        return sorted((kb for pid, kb in self.peak_kb.items() if self.role[pid] == role), reverse=True)


# --- PostgreSQL helpers ---------------------------------------------------------------------------


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _with_database(url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


@contextmanager
def fresh_pg_database(server_url: str, label: str) -> Iterator[str]:
    import psycopg

    name = f"fanmeter_bench_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_libpq(server_url), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield _with_database(server_url, name)
    finally:
        with psycopg.connect(_libpq(server_url), autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# --- a. raw COPY + INSERT ... ON CONFLICT rate ---------------------------------------------------------


def _copy_field(value: Any) -> str:
    if value is None:
        return "\\N"
    text = str(value)
    if any(c in text for c in "\\\t\n\r"):
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def bench_raw(path: Path, meta: dict[str, Any], pg_url: str, batch: int, work: Path) -> dict[str, Any]:
    import psycopg

    from fanmeter import migrate
    from metering.domain.events import Rejection, decode_event
    from metering.repository import _EVENT_COLUMN_TYPES, EVENT_COLUMNS

    print(f"\n== a. raw: decode + COPY/INSERT ... ON CONFLICT DO NOTHING in {batch:,}-row batches (PostgreSQL)")
    tsv = work / "raw-rows.tsv"
    started = time.perf_counter()
    rows = rejected = 0
    with path.open(encoding="utf-8") as src, tsv.open("w", encoding="utf-8", buffering=1 << 20) as out:
        for n, line in enumerate(src):
            event = decode_event(line)
            if isinstance(event, Rejection):
                rejected += 1
                continue
            values = (
                event.source, event.id, event.type.value, event.time_us, event.account_id, event.service_id,
                event.connection_id, event.transport, event.channel, event.count, event.bytes_out,
                event.bytes_in, event.reason, f"raw-{n // batch:08d}",
            )  # fmt: skip
            out.write("\t".join(map(_copy_field, values)) + "\n")
            rows += 1
    decode_s = time.perf_counter() - started
    print(
        f"decode_event + row building: {rows:,} rows in {decode_s:.1f} s = {rows / decode_s:,.0f} events/s (one core)"
    )
    if rejected:
        raise SystemExit(f"FAIL: {rejected} generated events were rejected by decode_event")
    hot_us = _hot_path_decode_us(path)
    print(f"decode_row (the worker's hot path: decode, validate, row): {hot_us:.2f} us of CPU an event (one core)")

    columns = ", ".join(EVENT_COLUMNS)
    body = ", ".join(f"{c} {t}" for c, t in zip(EVENT_COLUMNS, _EVENT_COLUMN_TYPES, strict=True))
    with fresh_pg_database(pg_url, "raw") as url:
        migrate.upgrade(url)
        inserted = 0
        batch_times: list[float] = []
        with psycopg.connect(_libpq(url)) as conn, tsv.open("rb") as src:
            started = time.perf_counter()
            while True:
                chunk = b"".join(line for _, line in zip(range(batch), src, strict=False))
                if not chunk:
                    break
                t0 = time.perf_counter()
                with conn.transaction():
                    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS stage_event ({body}) ON COMMIT DELETE ROWS")
                    with conn.cursor() as cur:
                        with cur.copy(f"COPY stage_event ({columns}) FROM STDIN") as copy:
                            copy.write(chunk)
                        cur.execute(
                            f"INSERT INTO raw_event ({columns}) SELECT {columns} FROM stage_event WHERE true "
                            "ORDER BY source, event_id ON CONFLICT (source, event_id) DO NOTHING"
                        )
                        inserted += cur.rowcount
                batch_times.append(time.perf_counter() - t0)
            elapsed = time.perf_counter() - started
            size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('raw_event'))").fetchone()[0]  # type: ignore[index]
    if inserted != meta["unique"]:
        raise SystemExit(f"FAIL: raw inserted {inserted:,} rows, expected {meta['unique']:,} distinct events")
    third = max(1, len(batch_times) // 3)
    print(
        f"COPY + INSERT ON CONFLICT: {rows:,} rows ({inserted:,} inserted, {rows - inserted:,} conflicts) "
        f"in {elapsed:.1f} s = {rows / elapsed:,.0f} rows/s; raw_event on disk {size}\n"
        f"  per batch: first third {1000 * sum(batch_times[:third]) / third:.0f} ms, "
        f"last third {1000 * sum(batch_times[-third:]) / third:.0f} ms"
    )
    tsv.unlink()
    return {"rows": rows, "inserted": inserted, "seconds": elapsed, "rows_per_s": rows / elapsed,
            "decode_s": decode_s, "decode_per_s": rows / decode_s, "hot_us": hot_us}  # fmt: skip


def _hot_path_decode_us(path: Path) -> float:
    """CPU microseconds an event of ``decode_row`` (what ``ingest_batch`` runs) over the file's lines."""
    from metering.domain.event_rows import decode_row

    lines = path.read_text(encoding="utf-8").splitlines()
    started = time.process_time()
    for line in lines:
        decode_row(line)
    return 1e6 * (time.process_time() - started) / len(lines)


# --- b/c. end to end ------------------------------------------------------------------------------


@dataclass
class E2EResult:
    label: str
    events: int
    seconds: float
    send_seconds: float | None
    ingested_seconds: float | None
    cli_peak_kb: int
    worker_parent_peak_kb: int
    worker_children_peak_kb: list[int]
    counts: dict[str, int]
    tasks: dict[str, Counter[str]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    machine_busy_s: float = 0.0
    machine_total_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FANMETER_")}
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _run(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        [PY, "-m", "fanmeter", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise SystemExit(f"FAIL: fanmeter {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _stop(process: subprocess.Popen[Any]) -> None:
    """SIGTERM the process (Celery warm shutdown), then SIGKILL it and any descendant left."""
    if process.poll() is not None:
        return
    descendants = _descendants(process.pid)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    time.sleep(0.5)
    for pid in descendants:
        if _proc_status(pid):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


class ProgressPoller(threading.Thread):
    """Watches ingest_batch fill up, to tell when the last batch was ingested (before rollups finished)."""

    def __init__(self, count_batches: Any, expected: int, t0: float) -> None:
        super().__init__(daemon=True)
        self.count_batches, self.expected, self.t0 = count_batches, expected, t0
        self.done_at: float | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(1.0):
            with suppress(Exception):
                if self.count_batches() >= self.expected:
                    self.done_at = time.perf_counter() - self.t0
                    return

    def stop(self) -> None:
        self._halt.set()
        self.join()


_TASK_LINE = re.compile(r"Task metering\.tasks\.(\w+)\[[^\]]+\] (succeeded|retry|raised)")


def run_e2e(
    label: str,
    env_extra: dict[str, str],
    path: Path,
    meta: dict[str, Any],
    batch_size: int | None,
    timeout: float,
    py_spy: str | None,
    count_batches: Any,
    database: str | None = None,
    polling_interval: float | None = None,
    worker_options: tuple[str, ...] = (),
    prepare: Any = None,
) -> E2EResult:
    n = meta["events"]
    env = _clean_env(env_extra)
    data_dir = Path(env_extra["FANMETER_DATA_DIR"])
    data_dir.mkdir(parents=True, exist_ok=True)
    print(_run(env, "db", "upgrade").strip())
    finish = prepare(env) if prepare else None  # part d: seed the database, start its beat; stopped below
    sampler = ProcessSampler(database=database)
    worker_log = data_dir / "worker.log"
    worker_args = ["worker", "--concurrency=2", "--no-beat", "--loglevel=INFO", *worker_options]
    if polling_interval is None:
        command = [PY, "-m", "fanmeter", *worker_args]
    else:  # an experiment: the same worker with kombu's virtual-transport polling interval changed
        command = [PY, "-c", _POLLING_WORKER.format(interval=polling_interval), *worker_args]
    with worker_log.open("wb") as log:
        worker = subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    spies: list[subprocess.Popen[Any]] = []
    cli: subprocess.Popen[str] | None = None
    try:
        deadline = time.monotonic() + 120
        while b" ready." not in worker_log.read_bytes():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"FAIL: worker did not start:\n{worker_log.read_text()[-4000:]}")
            time.sleep(0.2)
        sampler.watch(worker.pid, "worker")
        if py_spy:
            spies.append(_spy(py_spy, worker.pid, data_dir / f"py-spy-worker-{label}.txt", subprocesses=True))
        args = [PY, "-m", "fanmeter", "ingest", str(path), "--timeout", str(timeout)]
        if batch_size:
            args += ["--batch-size", str(batch_size)]
        expected_batches = math.ceil(n / (batch_size or int(env.get("FANMETER_INGEST_BATCH_SIZE", 5000))))
        sampler.baseline()
        own_start = resource.getrusage(resource.RUSAGE_SELF)
        sampler.start()
        t0 = time.perf_counter()
        cli = subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        sampler.watch(cli.pid, "ingest CLI")
        if py_spy:
            spies.append(_spy(py_spy, cli.pid, data_dir / f"py-spy-cli-{label}.txt", subprocesses=False))
        poller = ProgressPoller(count_batches, expected_batches, t0)
        poller.start()
        lines: list[tuple[float, str]] = []
        reader = threading.Thread(
            target=lambda: lines.extend((time.perf_counter() - t0, line) for line in cli.stdout),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        sampler.sample()
        _, status, usage = os.wait4(cli.pid, 0)
        elapsed = time.perf_counter() - t0
        cli.returncode = os.waitstatus_to_exitcode(status)
        reader.join(timeout=10)
        poller.stop()
        sampler.stop()
        output = "".join(line for _, line in lines)
        if cli.returncode != 0:
            raise SystemExit(f"FAIL: fanmeter ingest exited {cli.returncode}:\n{output}")
        send_s = next((t for t, line in lines if line.startswith("processing")), None)
        counts = {
            k: int(v) for k, v in re.findall(r"^(events read|accepted|duplicates|rejected):\s+(\d+)", output, re.M)
        }
        counts["events read"] = int(re.search(r"events read: (\d+)", output).group(1))  # type: ignore[union-attr]
        print(output.strip())
        if counts.get("accepted", -1) + counts.get("duplicates", -1) != n:
            raise SystemExit(
                f"FAIL ({label}): accepted {counts.get('accepted')} + duplicates {counts.get('duplicates')} "
                f"!= {n} events in the file"
            )
        if counts["accepted"] != meta["unique"] or counts.get("rejected") != 0:
            raise SystemExit(f"FAIL ({label}): expected {meta['unique']} accepted and 0 rejected, got {counts}")
    finally:
        for spy in spies:
            with suppress(ProcessLookupError):
                spy.send_signal(signal.SIGINT)
            with suppress(subprocess.TimeoutExpired):
                spy.wait(timeout=60)
        if cli is not None and cli.returncode is None:
            cli.kill()
            with suppress(ChildProcessError):
                os.waitpid(cli.pid, 0)
        with suppress(Exception):
            if sampler.is_alive():
                sampler.stop()
        _stop(worker)
        if finish:
            finish()
    tasks: dict[str, Counter[str]] = {}
    for name, outcome in _TASK_LINE.findall(worker_log.read_text(errors="replace")):
        tasks.setdefault(name, Counter())[outcome] += 1
    cpu = sampler.cpu_by_role()
    cpu["ingest CLI"] = [usage.ru_utime + usage.ru_stime]
    own = resource.getrusage(resource.RUSAGE_SELF)
    cpu["this benchmark"] = [own.ru_utime + own.ru_stime - own_start.ru_utime - own_start.ru_stime]
    result = E2EResult(
        label=label,
        events=n,
        seconds=elapsed,
        send_seconds=send_s,
        ingested_seconds=poller.done_at,
        cli_peak_kb=max(usage.ru_maxrss, sampler.peak_kb.get(cli.pid, 0)),
        worker_parent_peak_kb=sampler.peak_kb.get(worker.pid, 0),
        worker_children_peak_kb=sampler.peaks("worker children"),
        counts=counts,
        tasks=tasks,
        cpu=cpu,
        machine_busy_s=sampler.machine_end[0] - sampler.machine_start[0],
        machine_total_s=sampler.machine_end[1] - sampler.machine_start[1],
    )
    _print_e2e(result)
    if py_spy:
        for spy_file in sorted(data_dir.glob(f"py-spy-*-{label}.txt")):
            print(f"\npy-spy {spy_file.name}:")
            print(summarise_collapsed(spy_file))
    return result


# kombu's SQLAlchemy transport hands broker_transport_options to create_engine(), which refuses
# polling_interval, so the experiment sets the transport class's attribute instead.
_POLLING_WORKER = (
    "import sys; import kombu.transport.sqlalchemy as t; t.Transport.polling_interval = {interval}; "
    "from fanmeter.cli import main; main(sys.argv[1:])"
)


def _spy(py_spy: str, pid: int, out: Path, subprocesses: bool) -> subprocess.Popen[Any]:
    args = [py_spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "50", "--nonblocking", "-o", str(out)]
    if subprocesses:
        args.append("--subprocesses")
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


_TASK_FRAMES = (
    ("rollup pass", "rollup_pass (metering/service.py"),
    ("ingest batch", "ingest_batch (metering/service.py"),
    ("send (CLI)", "send_files (fanmeter/ingest.py"),
    ("wait (CLI)", "wait_for (fanmeter/ingest.py"),
)


def summarise_collapsed(path: Path, top: int = 30) -> str:
    """A py-spy raw (collapsed) profile: share of samples per pipeline stage, hottest project lines, hottest leaves.

    Shares are of all non-idle samples (py-spy leaves out idle threads), per process tree.
    """
    stages: Counter[str] = Counter()
    project: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "Process "))]
        total += count
        stage = next((name for name, marker in _TASK_FRAMES if any(marker in f for f in frames)), "other")
        stages[stage] += count
        for frame in set(frames):
            if "(metering/" in frame or "(fanmeter/" in frame:
                project[frame] += count
        if frames:
            own[frames[-1]] += count
    if not total:
        return "  (no samples)"
    out = [
        f"  {total} samples; by stage: " + ", ".join(f"{k} {100 * v / total:.1f} %" for k, v in stages.most_common())
    ]
    out.append("  project lines, inclusive share:")
    for frame, count in project.most_common(top):
        out.append(f"  {100 * count / total:5.1f}%  {frame}")
    out.append("  leaf frames, self share:")
    for frame, count in own.most_common(15):
        out.append(f"  {100 * count / total:5.1f}%  {frame}")
    return "\n".join(out)


def _mb(kb: int) -> str:
    return f"{kb / 1024:,.0f} MB"


def _print_e2e(r: E2EResult) -> None:
    ingested = f"{r.ingested_seconds:.1f} s" if r.ingested_seconds is not None else "n/a"
    sent = f"{r.send_seconds:.1f} s" if r.send_seconds is not None else "n/a"
    print(
        f"{r.label}: {r.events:,} events in {r.seconds:.1f} s = {r.rate:,.0f} events/s "
        f"(send phase ended at {sent}, last batch ingested at ~{ingested})\n"
        f"  peak RSS: ingest CLI {_mb(r.cli_peak_kb)}, worker parent {_mb(r.worker_parent_peak_kb)}, "
        f"worker children {', '.join(_mb(k) for k in r.worker_children_peak_kb) or 'n/a'}"
    )
    for name, outcomes in sorted(r.tasks.items()):
        print(f"  worker task {name}: " + ", ".join(f"{v} {k}" for k, v in sorted(outcomes.items())))
    parts = []
    for role in ("worker children", "worker", "ingest CLI", "postgres backends", "rabbitmq server", "this benchmark"):
        if role in r.cpu:
            values = r.cpu[role]
            each = f" ({' + '.join(f'{v:.0f}' for v in sorted(values, reverse=True))})" if 1 < len(values) <= 4 else ""
            count = f" x{len(values)}" if len(values) > 4 else ""
            parts.append(f"{'worker parent' if role == 'worker' else role}{count} {sum(values):.0f} s{each}")
    print(f"  CPU seconds during the run: {'; '.join(parts)}")
    if r.machine_total_s:
        accounted = sum(sum(values) for values in r.cpu.values())
        print(
            f"  whole machine: {r.machine_busy_s:.0f} CPU s busy of {r.machine_total_s:.0f} "
            f"({100 * r.machine_busy_s / r.machine_total_s:.0f} % of {os.cpu_count()} CPUs); "
            f"{max(0.0, r.machine_busy_s - accounted):.0f} CPU s by other processes (the kernel, anything else running)"
        )


def _pg_batch_counter(url: str) -> Any:
    import psycopg

    def count() -> int:
        with psycopg.connect(_libpq(url), autocommit=True) as conn:
            return int(conn.execute("SELECT count(*) FROM ingest_batch").fetchone()[0])  # type: ignore[index]

    return count


def _sqlite_batch_counter(db: Path) -> Any:
    def count() -> int:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute("SELECT count(*) FROM ingest_batch").fetchone()[0])
        finally:
            conn.close()

    return count


def _pg_totals(url: str) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(_libpq(url)) as conn:
        totals = _totals(lambda sql: conn.execute(sql).fetchall())
        # Rows read and written per table over the whole run (the worker has exited, so its stats are flushed).
        time.sleep(1)
        totals["table_stats"] = {
            name: {"rows_read_by_index": fetched, "rows_read_by_seq_scan": seq, "inserted": ins, "deleted": dele}
            for name, fetched, seq, ins, dele in conn.execute(
                "SELECT relname, coalesce(idx_tup_fetch, 0), seq_tup_read, n_tup_ins, n_tup_del "
                "FROM pg_stat_user_tables WHERE relname IN ('raw_event', 'connection_day', 'connection_session', "
                "'dirty_connection') ORDER BY relname"
            ).fetchall()
        }
        return totals


def _sqlite_totals(db: Path) -> dict[str, Any]:
    conn = sqlite3.connect(db)
    try:
        return _totals(lambda sql: conn.execute(sql).fetchall())
    finally:
        conn.close()


def _totals(query: Any) -> dict[str, Any]:
    return {
        "raw_event": query("SELECT count(*) FROM raw_event")[0][0],
        "connection_session": query("SELECT count(*) FROM connection_session")[0][0],
        "minutes_by_month": {
            str(m)[:7]: int(v)
            for m, v in query(
                "SELECT substr(CAST(day AS VARCHAR(10)), 1, 7), sum(connection_minutes) "
                "FROM usage_daily GROUP BY 1 ORDER BY 1"
            )
        },
    }


def _delete_queue(amqp_url: str, queue: str) -> None:
    from kombu import Connection

    with suppress(Exception), Connection(amqp_url) as conn:
        conn.default_channel.queue_delete(queue)  # type: ignore[attr-defined]


# --- main -----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--events", type=int, default=1_000_000, help="events in the generated file (default 1,000,000)"
    )
    parser.add_argument("--duplicates", type=float, default=0.03, help="share of duplicate lines (default 0.03)")
    parser.add_argument("--seed", type=int, default=20260131)
    parser.add_argument("--file", type=Path, help="reuse a file generated before (its .meta.json must exist)")
    parser.add_argument(
        "--batch-size", type=int, help="events per Celery message for `fanmeter ingest` (default: its own)"
    )
    parser.add_argument("--raw-batch", type=int, default=10_000, help="rows per COPY/INSERT batch in part a")
    parser.add_argument("--skip-raw", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true", help="skip parts a and b")
    parser.add_argument("--skip-embedded", action="store_true", help="skip part c")
    parser.add_argument(
        "--pg-url", default=DEFAULT_PG, help="a PostgreSQL server URL (a database per run is made on it)"
    )
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/fanmeter-bench"))
    parser.add_argument("--timeout", type=float, default=7200, help="seconds `fanmeter ingest` may wait")
    parser.add_argument("--py-spy", metavar="PATH", help="a py-spy binary: also profile the worker tree and the CLI")
    parser.add_argument("--keep", action="store_true", help="keep the data directory (worker logs, databases)")
    parser.add_argument(
        "--polling-interval", type=float, metavar="SECONDS",
        help="experiment: run the embedded worker with kombu's SQLAlchemy transport polling_interval set to this "
        "(kombu's default: 1 s)",
    )  # fmt: skip
    parser.add_argument(
        "--worker-option", action="append", default=[], metavar="OPTION",
        help="an extra `fanmeter worker` option, e.g. --worker-option=--pool=prefork, --worker-option=--concurrency=3 "
        "(repeatable; a later --concurrency wins over the default 2)",
    )  # fmt: skip
    parser.add_argument(
        "--alert-thresholds", action="store_true",
        help="part d instead of b and c (bench/alert_thresholds.py): alternating runs without and with 10,000 accounts "
        "x 3 usage alert thresholds, the checker sent every --alert-interval s",
    )  # fmt: skip
    parser.add_argument("--alert-rounds", type=int, default=2, help="part d: pairs of runs (default 2)")
    parser.add_argument("--alert-interval", type=float, default=2.0, help="part d: seconds between checker passes")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]

    run_id = uuid.uuid4().hex[:8]
    work = args.data_dir / f"run-{run_id}"
    work.mkdir(parents=True, exist_ok=True)
    print(f"work directory {work}; python {sys.version.split()[0]}; {os.cpu_count()} CPUs")
    if args.file:
        path = args.file
        meta = json.loads(path.with_suffix(path.suffix + ".meta.json").read_text())
    else:
        path = args.data_dir / f"events-{args.events}-{args.seed}.jsonl"
        meta_path = path.with_suffix(path.suffix + ".meta.json")
        if (
            path.exists()
            and meta_path.exists()
            and json.loads(meta_path.read_text()).get("duplicates") == round(args.events * args.duplicates)
        ):
            meta = json.loads(meta_path.read_text())
            print(f"reusing {path}")
        else:
            started = time.perf_counter()
            meta = generate(path, args.events, args.duplicates, args.seed)
            print(f"generated {path} in {time.perf_counter() - started:.1f} s")
    print(json.dumps(meta, indent=2))

    summary: list[tuple[str, str, str, str]] = []
    results: list[E2EResult] = []
    try:
        if not args.skip_postgres and not args.skip_raw:
            raw = bench_raw(path, meta, args.pg_url, args.raw_batch, work)
            summary.append(
                ("a. decode_event (1 core)", f"{raw['decode_per_s']:,.0f} events/s", f"{raw['decode_s']:.1f} s", "")
            )
            summary.append(("a. decode_row (1 core)", f"{raw['hot_us']:.2f} us CPU/event", "", ""))
            summary.append(
                ("a. raw COPY+INSERT (PG)", f"{raw['rows_per_s']:,.0f} rows/s", f"{raw['seconds']:.1f} s", "")
            )
        if args.alert_thresholds:  # part d replaces b and c
            import alert_thresholds  # bench/alert_thresholds.py, beside this script

            summary += alert_thresholds.run_all(sys.modules[__name__], args, path, meta, run_id, work)
            args.skip_postgres = args.skip_embedded = True
        if not args.skip_postgres:
            print("\n== b. end to end: PostgreSQL + RabbitMQ")
            queue = f"bench-{run_id}"
            try:
                with fresh_pg_database(args.pg_url, "e2e") as url:
                    env = {
                        "FANMETER_DATA_DIR": str(work / "pg"),
                        "FANMETER_DATABASE_URL": url,
                        "FANMETER_CELERY_BROKER_URL": args.amqp_url,
                        "FANMETER_CELERY_QUEUE": queue,
                    }
                    r = run_e2e("postgres", env, path, meta, args.batch_size, args.timeout, args.py_spy,
                                _pg_batch_counter(url), database=url.rsplit("/", 1)[1],
                                worker_options=tuple(args.worker_option))  # fmt: skip
                    totals = _pg_totals(url)
                    stats = totals.pop("table_stats")
                    print(f"  database: {totals}")
                    for name, values in stats.items():
                        print(f"  {name}: " + ", ".join(f"{k} {v:,}" for k, v in values.items()))
                    results.append(r)
            finally:
                _delete_queue(args.amqp_url, queue)
        if not args.skip_embedded:
            print("\n== c. end to end: embedded default (SQLite + Celery over SQLite)")
            data = work / "embedded"
            env = {"FANMETER_DATA_DIR": str(data), "FANMETER_CELERY_QUEUE": f"bench-{run_id}"}
            label = "embedded" if args.polling_interval is None else f"embedded-poll-{args.polling_interval:g}s"
            counter = _sqlite_batch_counter(data / "fanmeter.db")
            r = run_e2e(label, env, path, meta, args.batch_size, args.timeout, args.py_spy, counter,
                        polling_interval=args.polling_interval, worker_options=tuple(args.worker_option))  # fmt: skip
            print(f"  database: {_sqlite_totals(data / 'fanmeter.db')}")
            results.append(r)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    for r in results:
        children = r.worker_children_peak_kb
        summary.append((
            f"{'b' if r.label == 'postgres' else 'c'}. e2e {r.label}",
            f"{r.rate:,.0f} events/s",
            f"{r.seconds:.1f} s",
            f"CLI {_mb(r.cli_peak_kb)}; worker {_mb(r.worker_parent_peak_kb)} + children "
            f"{' / '.join(_mb(k) for k in children)}",
        ))  # fmt: skip
    print(f"\n== summary: {meta['events']:,} events ({meta['unique']:,} distinct, {meta['duplicates']:,} duplicates)")
    print(f"{'measure':<28} {'rate':>18} {'time':>9}  peak RSS")
    for name, rate, seconds, memory in summary:
        print(f"{name:<28} {rate:>18} {seconds:>9}  {memory}")


if __name__ == "__main__":
    main()
