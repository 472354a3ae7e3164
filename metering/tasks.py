"""Celery tasks: thin adapters over ``metering.service``; each has an undecorated twin.

Arguments are batch ids and event texts, nothing stateful; every task is safe to redeliver.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import DBAPIError

from metering import service
from metering.bootstrap import bootstrap
from metering.celery_app import app

# A pass has a fixed cost (staging, session rewrite), so it waits a moment for more events to
# fold: bench/ingest.py ran at 29,000 events/s with a pass per flag raise, and faster with a delay.
ROLLUP_DELAY_SECONDS = 2.0

# A pass that finds another one holding the lock comes back after this long. 0.25 s was tried to
# shorten the idle tail of a run, but the waiting tasks then started pass after pass as soon as
# the lock freed, defeating ROLLUP_DELAY_SECONDS (bench/ingest.py: up to 136 rollup tasks for
# 1,000,000 events instead of ~12-30, and more CPU).
LOCKED_OUT_RETRY_SECONDS = 1.0

# Lock contention, deadlock victims and a database restart are transient: retry them.
TRANSIENT = (DBAPIError,)


def ingest_batch_inner(batch_id: str, payloads: list[str]) -> service.BatchResult:
    """Ingest one batch, then ask for a rollup pass once the batch is committed."""
    runtime = bootstrap()
    result = service.ingest_batch(runtime.engine, batch_id, payloads, datetime.now(UTC))
    if result.rollup_needed:
        rollup.apply_async(countdown=ROLLUP_DELAY_SECONDS)
    return result


# A batch is a list of event texts full of quotes: JSON escapes every one of them on the way in and
# unescapes it on the way out (~1.1 µs an event each side), msgpack copies the strings (~0.1 µs).
@app.task(
    name="metering.tasks.ingest_batch",
    serializer="msgpack",
    autoretry_for=TRANSIENT,
    retry_backoff=1,
    retry_backoff_max=10,
    max_retries=20,
)
def ingest_batch(batch_id: str, payloads: list[str]) -> dict[str, Any]:
    result = ingest_batch_inner(batch_id, payloads)
    return {"accepted": result.accepted, "duplicates": result.duplicates, "rejected": result.rejected}


def rollup_inner() -> service.PassResult:
    """Fold every waiting connection event; if another pass holds the lock, report it."""
    runtime = bootstrap()
    return service.rollup_until_clean(runtime.engine, runtime.settings.rollup_pass_size)


@app.task(
    name="metering.tasks.rollup",
    bind=True,
    autoretry_for=TRANSIENT,
    retry_backoff=1,
    retry_backoff_max=10,
    max_retries=20,
)
def rollup(self: Any) -> int:
    result = rollup_inner()
    if result.locked_out:
        # Another pass is running; come back so marks made after its last look are not stranded.
        raise self.retry(countdown=LOCKED_OUT_RETRY_SECONDS, max_retries=None)
    return result.connections
