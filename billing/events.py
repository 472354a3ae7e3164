"""``POST /v1/events``: CloudEvents from any producer with an ingest token, into the same pipeline.

The body is parsed only far enough to split it into events; each event is validated by the
pipeline's ingest task exactly like events from ``fanmeter ingest``, so a bad event becomes a
rejected-event row with its reason and never blocks the good ones beside it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence

from billing.domain.exceptions import NotFound, RuleViolation
from metering.client import PipelineClient
from metering.service import IngestProgress

MAX_BODY_BYTES = 10 * 1024 * 1024


def split_events(body: bytes) -> list[str]:
    """Split a structured CloudEvent or a batch (JSON array) into one JSON text per event.

    Example: ``b'[{"id":"1"},{"id":"2"}]'`` gives ``['{"id":"1"}', '{"id":"2"}']``.
    """
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RuleViolation(f"the body is not JSON: {error}") from None
    events = document if isinstance(document, list) else [document]
    if not events:
        raise RuleViolation("the batch is empty: send at least one event")
    return [json.dumps(event, separators=(",", ":"), ensure_ascii=False) for event in events]


# "api-<random>x<number of Celery messages>": the id alone tells how many batches to wait for.
_BATCH_ID = re.compile(r"^api-[0-9a-f]{20}x([0-9]{1,6})$")


def send(pipeline: PipelineClient, events: Sequence[str], batch_size: int) -> tuple[str, int]:
    """Send events to the pipeline as batches of one run; return the run's id and the message count."""
    chunks = [events[i : i + batch_size] for i in range(0, len(events), batch_size)]
    batch_id = f"api-{uuid.uuid4().hex[:20]}x{len(chunks)}"
    return batch_id, pipeline.submit_run(batch_id, chunks)


def progress(pipeline: PipelineClient, batch_id: str) -> tuple[IngestProgress, int]:
    """How far the pipeline has got with a batch id's messages, and how many messages it has."""
    match = _BATCH_ID.match(batch_id)
    if match is None:
        raise NotFound(f"no batch {batch_id!r}")
    return pipeline.progress(batch_id), int(match.group(1))
