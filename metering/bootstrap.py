"""The composition root: settings, engine and Celery configuration for one process."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy import Engine

from kernel.db import make_engine
from metering.settings import MeteringSettings


@dataclass(frozen=True)
class Runtime:
    settings: MeteringSettings
    engine: Engine


_runtime: tuple[int, Runtime] | None = None


def bootstrap(settings: MeteringSettings | None = None) -> Runtime:
    """Build this process's runtime (once per process: a forked worker child builds its own engine)."""
    global _runtime
    if settings is None and _runtime is not None and _runtime[0] == os.getpid():
        return _runtime[1]
    settings = settings or MeteringSettings()
    settings.ensure_data_dir()
    runtime = Runtime(settings, make_engine(settings.resolved_database_url))
    _runtime = (os.getpid(), runtime)
    return runtime
