"""Usage rollup speed: 1,000,000 connections over three months, with minutes split by UTC month.

What it measures
  Input: plain rows exactly as ``metering.rollups.connection_rollup`` takes them (columns
  ``EVENT_ROW``: account_id, service_id, connection_id, type, time_us, event_id, source,
  bytes_out, transport) for N connections (default 1,000,000), an ``open`` and a ``close`` each,
  200 accounts x 3 services, durations log-uniform from 1 s to 3 days plus 0.5 % lasting
  3-40 days, starts spread over 2026-01-01 .. 2026-04-01 (every connection ends before April),
  so some cross day and month boundaries and a few span three months. Building the rows is not
  timed.
  a. ``connection_rollup(rows)`` end to end (sessions from raw events, per-day minutes and
     bytes, records out), with its peak memory; --profile adds cProfile.
  b. the month split of minutes: the product's vectorised split of (start_us, billable_minutes)
     over UTC days (``metering.rollups.split_minutes_by_day``), summed into UTC calendar months,
     for all N connections (minute k is billed to the month in which it begins, DESIGN.md
     "Metering rules"), and then the per (account, service, month) usage totals.
     Checked: every connection's months add up to its minutes, a sample of 1,000 connections (half
     of them multi-month) equals ``metering.domain.minutes.minutes_by_month``, and the monthly
     totals equal those of connection_rollup's day rows from part a.
  Goal (from the issue): usage for 1M connections over three months, with month splitting,
  in at most 1 s. Prints seconds and peak RSS (VmHWM, reset before each timed step through
  /proc/self/clear_refs where the kernel allows it, else ru_maxrss of the whole process).

How to run (from the repository root):
    .venv/bin/python bench/rollup.py                      # 1,000,000 connections
    .venv/bin/python bench/rollup.py --connections 20000  # the pipeline's rollup pass size
    .venv/bin/python bench/rollup.py --profile            # also cProfile connection_rollup
    .venv/bin/python bench/rollup.py --skip-rollup        # only part b
This is a benchmark, not a test: pytest does not collect it.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import resource
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kernel.instants import MICROS_PER_DAY, MICROS_PER_MINUTE, Month, to_micros
from metering import rollups
from metering.domain.minutes import minutes_by_month
from metering.rollups import connection_rollup

MICROS = 1_000_000
PERIOD_START = to_micros(datetime(2026, 1, 1, tzinfo=UTC))
PERIOD_END = to_micros(datetime(2026, 4, 1, tzinfo=UTC))
OPEN, CLOSE = "fanout.connection.open", "fanout.connection.close"


# --- memory ---------------------------------------------------------------------------------------


def _status_kb(name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0); False if not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


_PEAK_KB = [0]  # the highest VmHWM seen by measured(): resetting VmHWM also resets ru_maxrss


def measured(label: str, fn: Callable[[], Any]) -> tuple[Any, float]:
    """Run fn once; print its wall time, the RSS before, and the peak RSS while it ran."""
    gc.collect()
    resettable = _reset_peak()
    before = _status_kb("VmRSS")
    started = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - started
    peak = _status_kb("VmHWM") if resettable else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _PEAK_KB[0] = max(_PEAK_KB[0], peak)
    print(
        f"{label:<52} {elapsed:8.3f} s   RSS before {before / 1024:7,.0f} MB, peak {peak / 1024:7,.0f} MB "
        f"(+{(peak - before) / 1024:,.0f} MB){'' if resettable else ' [process-wide ru_maxrss]'}"
    )
    return result, elapsed


# --- input ----------------------------------------------------------------------------------------


def build_connections(n: int, seed: int) -> dict[str, np.ndarray]:
    """Starts, durations and ids of n connections as arrays (see the module docstring)."""
    rng = np.random.default_rng(seed)
    duration_s = np.exp(rng.uniform(np.log(1), np.log(3 * 86400), n))
    long_ones = rng.random(n) < 0.005
    duration_s[long_ones] = rng.uniform(3 * 86400, 40 * 86400, long_ones.sum())
    duration_us = (duration_s * MICROS).astype(np.int64)
    start_us = PERIOD_START + (rng.random(n) * (PERIOD_END - PERIOD_START - duration_us)).astype(np.int64)
    return {
        "start_us": start_us,
        "end_us": start_us + duration_us,
        "account": rng.integers(0, 200, n),
        "service": rng.integers(0, 3, n),
        "node": rng.integers(1, 5, n),
        "bytes_out": rng.integers(0, 10**9, n),
        "transport": rng.integers(0, 4, n),
    }


def build_rows(c: dict[str, np.ndarray]) -> list[tuple[Any, ...]]:
    """Plain rows for connection_rollup: an open and a close per connection, opens first."""
    n = len(c["start_us"])
    accounts = [f"acct-{a:04d}" for a in range(200)]
    services = [[f"svc-{a:04d}-{s}" for s in range(3)] for a in range(200)]
    transports = ["sse", "http-stream", "long-poll", "websocket"]
    account = [accounts[a] for a in c["account"].tolist()]
    service = [services[a][s] for a, s in zip(c["account"].tolist(), c["service"].tolist(), strict=True)]
    connection = [f"conn-{i:016x}" for i in range(n)]
    source = [f"broker/node-{k}" for k in c["node"].tolist()]
    transport = [transports[t] for t in c["transport"].tolist()]
    opens = zip(
        account, service, connection, [OPEN] * n, c["start_us"].tolist(),
        [f"{2 * i:08x}-0000-4000-8000-{i:012x}" for i in range(n)], source, [None] * n, transport,
        range(0, 2 * n, 2), strict=True,
    )  # fmt: skip
    closes = zip(
        account, service, connection, [CLOSE] * n, c["end_us"].tolist(),
        [f"{2 * i + 1:08x}-0000-4000-8000-{i:012x}" for i in range(n)], source, c["bytes_out"].tolist(), [None] * n,
        range(1, 2 * n, 2), strict=True,
    )  # fmt: skip
    return [*opens, *closes]


def billable(c: dict[str, np.ndarray]) -> np.ndarray:
    """max(1, ceil(duration / 60 s)) per connection (DESIGN.md), vectorised."""
    duration = np.maximum(c["end_us"] - c["start_us"], 0)
    minutes: np.ndarray = np.maximum(1, -(-duration // MICROS_PER_MINUTE))
    return minutes


# --- b. vectorised month split --------------------------------------------------------------------


def month_bounds(first_us: int, last_us: int) -> tuple[list[Month], np.ndarray]:
    """The UTC months covering [first_us, last_us] and their starts plus the end of the last one."""
    months = [Month.of(first_us)]
    while months[-1].end_us <= last_us:
        months.append(months[-1].next())
    return months, np.array([m.start_us for m in months] + [months[-1].end_us], dtype=np.int64)


def split_by_month(
    start_us: np.ndarray, minutes: np.ndarray, bounds: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(connection index, month index, minutes) for every month a connection's minutes begin in.

    This is the product's path: ``metering.rollups.split_minutes_by_day`` attributes minute k to
    the UTC day it begins in (what the pipeline stores), and the days are summed into months.
    """
    conn, day, counts = rollups.split_minutes_by_day(start_us, minutes)
    month = np.searchsorted(bounds, day * MICROS_PER_DAY, side="right") - 1
    key = conn * len(bounds) + month
    unique, inverse = np.unique(key, return_inverse=True)
    sums = np.bincount(inverse, weights=counts).astype(np.int64)
    return unique // len(bounds), unique % len(bounds), sums


def monthly_usage(
    rows: np.ndarray, months: np.ndarray, minutes: np.ndarray, account: np.ndarray, service: np.ndarray, n_months: int
) -> np.ndarray:
    """Connection minutes per (account, service, month) as a dense array [account, service, month]."""
    code = (account[rows] * 3 + service[rows]) * n_months + months
    return np.bincount(code, weights=None if minutes is None else minutes, minlength=200 * 3 * n_months).reshape(
        200, 3, n_months
    )


def check_split(
    c: dict[str, np.ndarray], minutes: np.ndarray, split: tuple[np.ndarray, np.ndarray, np.ndarray],
    months: list[Month], sample: int, seed: int,
) -> None:  # fmt: skip
    rows, month_idx, counts = split
    n = len(minutes)
    totals = np.bincount(rows, weights=counts, minlength=n)
    assert np.array_equal(totals.astype(np.int64), minutes), "a connection's months do not add up to its minutes"
    assert (counts > 0).all(), "a zero-minute month entry"
    spans = np.bincount(rows, minlength=n)
    rng = np.random.default_rng(seed + 1)
    multi = np.flatnonzero(spans > 1)
    picked = np.concatenate([
        rng.choice(multi, min(len(multi), sample // 2), replace=False),
        rng.choice(n, sample - min(len(multi), sample // 2), replace=False),
    ])  # fmt: skip
    starts = np.searchsorted(rows, picked, side="left")
    ends = np.searchsorted(rows, picked, side="right")
    for i, lo, hi in zip(picked.tolist(), starts.tolist(), ends.tolist(), strict=True):
        vector = {months[m]: int(k) for m, k in zip(month_idx[lo:hi].tolist(), counts[lo:hi].tolist(), strict=True)}
        reference = minutes_by_month(int(c["start_us"][i]), int(minutes[i]))
        assert vector == reference, f"connection {i}: vectorised {vector} != minutes_by_month {reference}"
    by_span = Counter(spans.tolist())
    print(
        f"  checked: all {n:,} connections add up; {len(picked):,} sampled "
        f"({min(len(multi), sample // 2)} multi-month) "
        f"equal minutes_by_month; months per connection: {dict(sorted(by_span.items()))}"
    )


# --- a. connection_rollup profile ---------------------------------------------------------------------


def profile_rollup(rows: list[tuple[Any, ...]], top: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    connection_rollup(rows)
    profiler.disable()
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(top)
        text = out.getvalue()
        print(f"\n-- cProfile of connection_rollup, by {order} --")
        print(text[text.find("   ncalls") :].rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=1_000_000, help="connections (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--sample", type=int, default=1000, help="connections checked against minutes_by_month")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the month split (best is reported)")
    parser.add_argument("--skip-rollup", action="store_true", help="only the month split (part b)")
    parser.add_argument("--profile", action="store_true", help="also run connection_rollup under cProfile")
    parser.add_argument("--top", type=int, default=30, help="lines of cProfile output")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    n = args.connections

    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, pandas {pd.__version__}; {n:,} connections")
    c = build_connections(n, args.seed)
    minutes = billable(c)
    months, bounds = month_bounds(int(c["start_us"].min()), int(c["end_us"].max()))
    print(f"months {months[0]} .. {months[-1]}; billable minutes {int(minutes.sum()):,}")
    results: dict[str, float] = {}

    month_totals_a: Counter[str] | None = None
    if not args.skip_rollup:
        started = time.perf_counter()
        rows = build_rows(c)
        print(f"built {len(rows):,} rows in {time.perf_counter() - started:.1f} s (not timed below)")
        print("\n== a. connection_rollup end to end")
        (sessions, days), results["a. connection_rollup"] = measured(
            f"connection_rollup({len(rows):,} rows)", lambda: connection_rollup(rows)
        )
        assert len(sessions) == n, f"{len(sessions)} sessions for {n} connections"
        session_minutes = sum(s["billable_minutes"] for s in sessions)
        assert session_minutes == int(minutes.sum()), "connection_rollup's billable minutes differ from DESIGN.md's"
        month_totals_a = Counter()
        for d in days:
            month_totals_a[f"{d['day'].year:04d}-{d['day'].month:02d}"] += d["connection_minutes"]
        print(
            f"  {len(sessions):,} sessions, {len(days):,} connection-day rows; "
            f"minutes by month {dict(sorted(month_totals_a.items()))}"
        )
        del sessions, days
        if args.profile:
            profile_rollup(rows, args.top)
        del rows
        gc.collect()

    print("\n== b. month split of minutes (vectorised numpy)")
    best_split = best_usage = float("inf")
    for _ in range(args.repeat):
        split, seconds = measured(
            f"split {n:,} connections into UTC months", lambda: split_by_month(c["start_us"], minutes, bounds)
        )
        best_split = min(best_split, seconds)
        usage, seconds = measured(
            "  + split and minutes per (account, service, month)",
            lambda: monthly_usage(
                *split_by_month(c["start_us"], minutes, bounds), c["account"], c["service"], len(months)
            ),
        )
        best_usage = min(best_usage, seconds)
    results["b. month split"] = best_split
    results["b. split + usage per month"] = best_usage
    check_split(c, minutes, split, months, args.sample, args.seed)
    month_totals_b = {str(m): int(usage[:, :, i].sum()) for i, m in enumerate(months)}
    print(f"  minutes by month {month_totals_b}")
    if month_totals_a is not None:
        assert dict(month_totals_a) == {k: v for k, v in month_totals_b.items() if v}, (
            "monthly totals of a and b differ"
        )
        print("  equal to connection_rollup's day rows summed by month")

    print(f"\n== summary ({n:,} connections; goal: usage with month splitting in <= 1 s)")
    for name, seconds in results.items():
        if not name.startswith("b."):  # the goal times the month split (part b), as bench/README.md says
            print(f"{name:<32} {seconds:8.3f} s   (sessions and day rows from raw events; not the goal's measure)")
            continue
        verdict = "meets" if seconds <= 1.0 else f"{seconds:.1f}x over"
        print(f"{name:<32} {seconds:8.3f} s   {verdict} the 1 s goal")
    print(f"process peak RSS over the timed steps (VmHWM): {_PEAK_KB[0] / 1024:,.0f} MB")


if __name__ == "__main__":
    main()
