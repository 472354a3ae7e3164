"""The Celery app of the metering pipeline, in UTC, with its schedule in code.

The broker URL comes from settings: kombu's SQLAlchemy transport over a SQLite file by
default (no server needed), or any real broker (``amqp://``, ``redis://``).
"""

from __future__ import annotations

import time

from celery import Celery
from kombu import Exchange, Queue

from kernel.settings import FanmeterSettings
from metering import sql_transport

# A rollup sweep folds waiting connection events whose triggering task was lost.
ROLLUP_SWEEP_SECONDS = 30.0
# The metering stage's beat entries; the worker's composition (fanmeter/pipeline.py) adds other
# packages' entries beside them, so this module names no task outside metering.
BEAT_SCHEDULE = {"rollup-sweep": {"task": "metering.tasks.rollup", "schedule": ROLLUP_SWEEP_SECONDS}}

# Which task modules a worker imports is decided where the worker is composed (fanmeter/pipeline.py).
app = Celery("fanmeter")


def rollup_queue_name(ingest_queue: str) -> str:
    """Rollups travel on a queue of their own so they never wait behind a backlog of batches."""
    return f"{ingest_queue}.rollup"


def configure(settings: FanmeterSettings) -> Celery:
    """Point the app at the configured broker; every process calls this before sending or working."""
    rollup_queue = rollup_queue_name(settings.celery_queue)
    app.conf.update(
        broker_url=sql_transport.with_fast_polling(settings.resolved_celery_broker_url),
        broker_connection_retry_on_startup=True,
        task_default_queue=settings.celery_queue,
        task_queues=[_queue(settings.celery_queue), _queue(rollup_queue)],
        task_routes={"metering.tasks.rollup": {"queue": rollup_queue}},
        timezone="UTC",
        enable_utc=True,
        task_serializer="json",
        # Batches travel as msgpack (metering.tasks); JSON stays accepted from any producer.
        accept_content=["json", "msgpack"],
        task_ignore_result=True,
        # Every task is idempotent, so a redelivery after a crash is safe.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
    )
    return app


def _queue(name: str) -> Queue:
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def declare_queue(attempts: int = 5) -> None:
    """Create the task queues before any worker or producer races to.

    kombu's SQLAlchemy transport creates a queue's row on first use; two processes
    doing so at once make one of them fail on the unique name (seen when a worker and
    `fanmeter ingest` start together). Declaring up front, retrying on that failure,
    leaves the row in place for both.
    """
    for attempt in range(attempts):
        try:
            with app.connection_for_write() as connection:
                for queue in app.conf.task_queues:
                    queue.bind(connection.default_channel).declare()
            return
        except Exception:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


configure(FanmeterSettings())
