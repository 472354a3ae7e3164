"""The one client of the metering pipeline: every producer of events sends through it.

The broker's shipper, the Pushpin adapter, ``POST /v1/events`` and ``fanmeter ingest`` submit
batches of CloudEvent texts under ids they choose deterministically (``batch_id``), ask which
batches the pipeline has recorded, and read how far a run of batches has got. None of them
sends a Celery task or reads the pipeline's tables itself.

Every call waits out an outage of the database or the message broker (a restart, a failover):
it says once what it waits for, retries with a backoff, and resumes. A service still gone after
``FANMETER_WAIT_FOR_SERVICES_SECONDS`` (default 120) ends the call with ``ServiceUnavailable``,
whose message is one line saying which service and for how long. Every call is safe to repeat
(batches are recorded once by id, events once by ``(source, id)``), so retrying never counts twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import kombu.exceptions
from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc

from kernel.db import make_engine, read_only
from kernel.settings import FanmeterSettings
from metering import repository, service
from metering.celery_app import app as celery_app
from metering.celery_app import configure, declare_queue
from metering.service import IngestProgress
from metering.tasks import ingest_batch, rollup

# The pipeline's batch ids are at most this long (the ingest_batch table's key).
MAX_BATCH_ID_CHARS = 64

# The setting that says how long a call waits for the database or the message broker to come back.
WAIT_FOR_SERVICES_ENV = "FANMETER_WAIT_FOR_SERVICES_SECONDS"
# Retries back off from the first to the last of these, then keep the last.
RETRY_DELAYS_S = (0.25, 0.5, 1.0, 2.0)

log = logging.getLogger(__name__)
T = TypeVar("T")


class ServiceUnavailable(RuntimeError):
    """The database or the message broker stayed unreachable for longer than the wait limit."""


def outage(error: BaseException) -> str | None:
    """``"database"`` or ``"message broker"`` when ``error`` says that service is (for now) unreachable.

    Anything else (a constraint, a bug, bad input) is not an outage and is never retried.
    """
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated or isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError):
            return "database"
        return None
    if isinstance(error, sa_exc.DisconnectionError):
        return "database"
    if isinstance(error, kombu.exceptions.OperationalError | ConnectionError | TimeoutError):
        return "message broker"
    # amqp's connection errors (a broker shutting down mid-call) and kombu's own.
    if type(error).__module__.startswith(("amqp", "kombu")) and isinstance(error, OSError | EOFError):
        return "message broker"
    return None


def first_line(error: BaseException) -> str:
    """The error's message in one line, without the driver's SQL and background links."""
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    return text[0] if text else type(error).__name__


def batch_id(run_id: str, index: int) -> str:
    """The id of message ``index`` of a run: ``run_id`` then the index, so a run's ids share a prefix.

    Example: ``batch_id("api-1f2e", 3)`` is ``"api-1f2e-000003"``; ``progress("api-1f2e-")`` finds it.
    """
    return f"{run_id}-{index:06d}"


class PipelineClient:
    """Submits batches to the pipeline's ingest task and reads what the pipeline has recorded."""

    def __init__(
        self,
        engine: Engine,
        settings: FanmeterSettings | None = None,
        wait_s: float | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        """Send to where ``settings`` say; without them, to where this process's Celery app already points.

        ``wait_s``: how long a call waits out an outage (default: the settings'
        ``wait_for_services_seconds``, ``FANMETER_WAIT_FOR_SERVICES_SECONDS``); ``on_wait``
        is told once per outage, in one line, what the client waits for (default: a log warning).
        """
        if settings is not None:
            configure(settings)
        self._engine = engine
        self._declared = False
        self._wait_s = (settings or FanmeterSettings()).wait_for_services_seconds if wait_s is None else wait_s
        self._on_wait = on_wait or log.warning

    def retrying(self, call: Callable[[], T]) -> T:
        """Run ``call``, waiting out an outage of the database or the message broker.

        One line goes to ``on_wait`` when an outage begins; a call that still fails after the wait
        limit raises ``ServiceUnavailable``. Other errors pass through at once.
        """
        started: float | None = None
        attempt = 0
        while True:
            try:
                return call()
            except Exception as error:
                what = outage(error)
                if what is None:
                    raise
                now = time.monotonic()
                if started is None:
                    started = now
                    self._on_wait(
                        f"waiting for the {what} ({self._where(what)}) to come back, up to {self._wait_s:g} s: "
                        f"{first_line(error)}"
                    )
                elif now - started >= self._wait_s:
                    raise ServiceUnavailable(
                        f"the {what} ({self._where(what)}) has been unreachable for {now - started:.0f} s "
                        f"(limit {WAIT_FOR_SERVICES_ENV}={self._wait_s:g}): {first_line(error)}"
                    ) from None
                if what == "message broker":
                    self._declared = False  # a restarted broker may have lost non-durable state
                time.sleep(RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)])
                attempt += 1

    def _where(self, what: str) -> str:
        if what == "database":
            return self._engine.url.render_as_string(hide_password=True)
        try:
            with celery_app.connection_for_write() as connection:  # not connected: only its address
                return str(connection.as_uri())  # the password masked
        except Exception:
            return "the configured broker"

    @classmethod
    def from_settings(cls, settings: FanmeterSettings) -> PipelineClient:
        """A client with an engine of its own (for processes with no metering database engine yet)."""
        return cls(make_engine(settings.resolved_database_url), settings)

    def submit(self, batch_id: str, payloads: Sequence[str]) -> None:
        """Send one batch; sending the same id again is safe (the pipeline records a batch once)."""
        if len(batch_id) > MAX_BATCH_ID_CHARS:
            raise ValueError(f"batch id {batch_id!r} is longer than {MAX_BATCH_ID_CHARS} characters")
        payloads = list(payloads)
        self.retrying(lambda: self._send(batch_id, payloads))

    def _send(self, batch_id: str, payloads: list[str]) -> None:
        if not self._declared:  # the queue rows of the embedded transport, created once
            # Reach the broker first, failing at once if it is down: declaring would retry forever, silently.
            with celery_app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1)
            declare_queue()
            self._declared = True
        ingest_batch.apply_async(args=(batch_id, payloads))

    def submit_run(self, run_id: str, batches: Iterable[Sequence[str]]) -> int:
        """Send batches as one run (ids from ``batch_id``); return how many were sent."""
        sent = 0
        for payloads in batches:
            self.submit(batch_id(run_id, sent), payloads)
            sent += 1
        return sent

    def recorded(self, batch_ids: list[str]) -> set[str]:
        """The ids among ``batch_ids`` that the pipeline has ingested."""
        return self.retrying(lambda: service.recorded_batches(self._engine, batch_ids))

    def progress(self, run_id: str) -> IngestProgress:
        """How far the batches of the run ``run_id`` have got (ingested, rolled up, rejected)."""
        return self.retrying(lambda: service.ingest_progress(self._engine, run_id + "-"))

    def stored_so_far(self) -> int:
        """The highest event id any batch has stored by now (0 with none)."""

        def read() -> int:
            with read_only(self._engine).connect() as conn:
                return repository.batch_totals(conn, "").high_event_id

        return self.retrying(read)

    def waiting_for_rollup(self, up_to_event_id: int) -> int:
        """Batches holding connection events up to ``up_to_event_id`` that still wait for a rollup pass.

        A run whose events were all stored before (a re-run after an outage) has nothing pending of
        its own: its events are folded once the earlier batches that stored them are.
        """

        def read() -> int:
            with read_only(self._engine).connect() as conn:
                return repository.pending_up_to(conn, up_to_event_id)

        return self.retrying(read)

    def nudge_rollup(self) -> None:
        """Ask for a rollup pass now (a lost trigger must never leave a caller waiting)."""
        self.retrying(rollup.delay)
