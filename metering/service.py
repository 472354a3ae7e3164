"""The metering pipeline's stages as services: ingest a batch, run a rollup pass, read usage.

Each stage loads rows (repository), calls pure rules (``metering.domain``,
``metering.rollups``) and writes the result in one transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine

from kernel.db import read_only
from kernel.instants import Month
from metering import repository, rollups
from metering.domain.event_rows import decode_batch
from metering.domain.usage import DailyUsage, UsageReport


@dataclass(frozen=True)
class BatchResult:
    batch_id: str
    accepted: int
    duplicates: int
    rejected: int
    # True when this batch raised the rollup flag: the caller sends one rollup task.
    rollup_needed: bool = False


def ingest_batch(engine: Engine, batch_id: str, payloads: Sequence[str], now: datetime) -> BatchResult:
    """Validates, dedupes and stores one batch of event texts; a batch seen before changes nothing.

    Storing an event and claiming its (source, id) key is one INSERT in one transaction
    with the batch record, so a failure followed by a retry meters each event exactly once.
    """
    batch = decode_batch(payloads)
    with engine.begin() as conn:
        done = repository.batch_counts(conn, batch_id)
        if done is not None:
            return _result(batch_id, done)
        stored = repository.insert_events(conn, batch_id, batch.rows) if batch.rows else repository.NOTHING_STORED
        repository.insert_rejections(conn, batch_id, batch.rejections, now)
        touched = False
        if stored.inserted:
            repository.add_message_usage(conn, batch_id, stored.low_id, stored.high_id)
        duplicates = batch.repeats + len(batch.rows) - stored.inserted
        counts = repository.BatchCounts(stored.inserted, duplicates, len(batch.rejections))
        repository.record_batch(conn, batch_id, counts, stored.high_id, now)
        if stored.inserted and batch.has_connection_events:  # connection events to fold
            repository.enqueue_pending(conn, batch_id, stored.low_id, stored.high_id)
            touched = repository.request_rollup(conn)
    return _result(batch_id, counts, touched)


def _result(batch_id: str, counts: repository.BatchCounts, rollup_needed: bool = False) -> BatchResult:
    return BatchResult(batch_id, counts.accepted, counts.duplicates, counts.rejected, rollup_needed)


@dataclass(frozen=True)
class PassResult:
    connections: int
    locked_out: bool = False
    # Batches taken off the queue; 0: nothing was waiting.
    batches: int = 0


def rollup_pass(engine: Engine, limit: int) -> PassResult:
    """Folds the connection events of the oldest waiting batches into their sessions and the daily rollups.

    A pass takes about ``limit`` events' worth of batches (at least one batch).

    A connection whose new counter report belongs before one already folded is recomputed
    from all its raw events instead, so the result never depends on arrival order.
    """
    with engine.begin() as conn:
        if not repository.try_lock_rollups(conn):
            return PassResult(0, locked_out=True)
        batches, events = repository.claim_pending(conn, limit)
        if not events:  # nothing waits, or the batches' connection events were all repeats
            repository.delete_pending(conn)
            return PassResult(0, batches=batches)
        states = repository.load_states(conn)
        late = rollups.late_connections(events, states)
        if late:
            events = [e for e in events if rollups.event_key(e) not in late] + repository.load_all_events(conn, late)
            states = {key: state for key, state in states.items() if key not in late}
        old_days = repository.load_connection_days(conn)
        base_days = [d for d in old_days if d.key not in late]
        sessions, days = rollups.fold_connections(events, states, base_days)
        repository.add_usage(conn, rollups.usage_deltas(old_days, days))
        repository.replace_connection_rollups(conn, sessions, days)
        repository.delete_pending(conn)
    return PassResult(len(sessions), batches=batches)


def rollup_until_clean(engine: Engine, limit: int) -> PassResult:
    """Runs rollup passes until no connection event waits (or another pass holds the lock)."""
    with engine.begin() as conn:
        repository.lower_rollup_request(conn)
    total = 0
    while True:
        result = rollup_pass(engine, limit)
        total += result.connections
        if result.locked_out or result.batches == 0:
            return PassResult(total, locked_out=result.locked_out)


def usage_for_month(engine: Engine, account_id: str, month: Month) -> UsageReport:
    """Returns an account's usage for a UTC month from the daily rollups."""
    with read_only(engine).connect() as conn:
        return usage_on(conn, account_id, month)


def usage_on(conn: Connection, account_id: str, month: Month) -> UsageReport:
    """``usage_for_month`` on a connection the caller holds; an empty report when nothing was used."""
    return usage_reports(conn, [month], [account_id]).get((account_id, month)) or UsageReport(account_id, month)


def usage_reports(
    conn: Connection, months: Collection[Month], accounts: Collection[str] | None = None
) -> dict[tuple[str, Month], UsageReport]:
    """Returns the usage reports of ``accounts`` (None: every account) for ``months``, in one query.

    Only (account, month) pairs with rollup rows are present: the usage API reads an absent
    report as "check that the account exists", statements as an empty report.
    """
    return repository.usage_reports(conn, months, accounts)


def usage_revisions(
    conn: Connection, months: Collection[Month], accounts: Collection[str] | None = None
) -> dict[tuple[str, Month], int]:
    """Returns the usage revision of each (account, month) written so far: it moves whenever the usage does."""
    return repository.usage_revisions(conn, months, accounts)


def daily_usage_on(conn: Connection, account_id: str, month: Month) -> list[DailyUsage]:
    """Returns an account's rollup rows for a UTC month, per service and day (sorted so)."""
    return repository.daily_usage(conn, account_id, month)


@dataclass(frozen=True)
class IngestProgress:
    batches_done: int
    accepted: int
    duplicates: int
    rejected: int
    pending_left: int
    rejection_reasons: tuple[tuple[str, int], ...]


def recorded_batches(engine: Engine, batch_ids: list[str]) -> set[str]:
    """Tells which of ``batch_ids`` the pipeline has ingested (a producer's acknowledgement)."""
    if not batch_ids:
        return set()
    with read_only(engine).connect() as conn:
        return repository.recorded_batches(conn, batch_ids)


def ingest_progress(engine: Engine, batch_prefix: str) -> IngestProgress:
    """Reports how far the batches whose ids start with ``batch_prefix`` have got through the pipeline."""
    with read_only(engine).connect() as conn:
        totals = repository.batch_totals(conn, batch_prefix)
        pending = repository.pending_up_to(conn, totals.high_event_id) if totals.batches else 0
        reasons = repository.rejection_reasons(conn, batch_prefix)
    return IngestProgress(totals.batches, totals.accepted, totals.duplicates, totals.rejected, pending, tuple(reasons))
