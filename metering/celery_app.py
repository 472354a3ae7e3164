"""The Celery app of the metering pipeline, in UTC, with its schedule in code.

The broker URL comes from settings: kombu's SQLAlchemy transport over a SQLite file by
default (no server needed), or any real broker (``amqp://``, ``redis://``).
"""

from __future__ import annotations

from celery import Celery

from metering.settings import MeteringSettings

# A rollup sweep catches dirty connections whose triggering task was lost.
ROLLUP_SWEEP_SECONDS = 30.0

app = Celery("fanmeter", include=["metering.tasks"])


def configure(settings: MeteringSettings) -> Celery:
    """Point the app at the configured broker; every process calls this before sending or working."""
    app.conf.update(
        broker_url=settings.resolved_celery_broker_url,
        broker_connection_retry_on_startup=True,
        task_default_queue=settings.celery_queue,
        timezone="UTC",
        enable_utc=True,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # Every task is idempotent, so a redelivery after a crash is safe.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        beat_schedule={
            "rollup-sweep": {"task": "metering.tasks.rollup", "schedule": ROLLUP_SWEEP_SECONDS},
        },
    )
    return app


configure(MeteringSettings())
