"""The metering pipeline as the shipper sees it: send a batch to the Celery ingest task, ask which are recorded."""

from __future__ import annotations

from sqlalchemy import Engine, bindparam, text

from metering.bootstrap import bootstrap
from metering.celery_app import configure, declare_queue
from metering.settings import MeteringSettings
from metering.tasks import ingest_batch

_RECORDED = text("SELECT batch_id FROM ingest_batch WHERE batch_id IN :ids").bindparams(
    bindparam("ids", expanding=True)
)


class Pipeline:
    """Celery for sending (the same task `fanmeter ingest` uses), the metering database for acknowledgements."""

    def __init__(self, settings: MeteringSettings) -> None:
        runtime = bootstrap(settings)
        configure(runtime.settings)
        self._engine: Engine = runtime.engine
        self._declared = False

    def send(self, batch_id: str, payloads: list[str]) -> None:
        if not self._declared:  # the queue rows of the embedded transport, created once
            declare_queue()
            self._declared = True
        ingest_batch.apply_async(args=(batch_id, payloads))

    def recorded(self, batch_ids: list[str]) -> set[str]:
        with self._engine.connect() as conn:
            return {row[0] for row in conn.execute(_RECORDED, {"ids": batch_ids})}
