"""The pipeline's Celery app as fanmeter's processes compose it: task modules and beat schedule.

``metering`` owns the Celery app and its own stage; ``billing`` adds the statement-draft sweep.
Neither names the other: they meet here, where the worker process is put together.
"""

from __future__ import annotations

from celery import Celery

from billing import tasks as billing_tasks
from kernel.settings import FanmeterSettings
from metering import celery_app

# The modules a worker imports for their tasks (Celery's ``include``).
TASK_MODULES = ("metering.tasks", "billing.tasks")


def compose(settings: FanmeterSettings) -> Celery:
    """Configure the app for ``settings`` with every package's tasks and beat entries."""
    app = celery_app.configure(settings)
    app.conf.include = list(TASK_MODULES)
    app.conf.beat_schedule = {**celery_app.BEAT_SCHEDULE, **billing_tasks.BEAT_SCHEDULE}
    return app
