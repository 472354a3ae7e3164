"""``POST /v1/events``: CloudEvents from any producer with an ingest token, into the same pipeline.

The body is parsed only far enough to split it into events; each event is validated by the
pipeline's ingest task exactly like events from ``fanmeter ingest``, so a bad event becomes a
rejected-event row with its reason and never blocks the good ones beside it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from billing.domain.exceptions import NotFound, RuleViolation
from billing.domain.roles import Principal
from billing.orm import EventSubmission
from metering.client import PipelineClient
from metering.service import IngestProgress


def split_events(body: bytes) -> list[str]:
    """Split a structured CloudEvent or a batch (JSON array) into one JSON text per event.

    Example: ``b'[{"id":"1"},{"id":"2"}]'`` gives ``['{"id":"1"}', '{"id":"2"}']``.

    The whole body is judged before any event is sent on: JSON nested too deeply, an integer too
    long to convert, or a lone surrogate (``"\\ud800"``, not Unicode) refuse the batch with a reason.
    An object naming a key twice is passed on as written, so the pipeline rejects that event with
    its reason instead of billing whichever value a parser keeps.
    """
    repeated: list[bool] = []

    def keep_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) == len(pairs):
            return obj
        repeated.append(True)
        return _AsWritten(pairs)

    try:
        document = json.loads(body, object_pairs_hook=keep_repeats)
    except RecursionError:
        raise RuleViolation("the body is not acceptable JSON: it is nested too deeply") from None
    except UnicodeDecodeError as error:
        raise RuleViolation(f"the body is not UTF-8 JSON: {error}") from None
    except json.JSONDecodeError as error:
        raise RuleViolation(f"the body is not JSON: {error}") from None
    except ValueError:  # the only other: an integer over Python's digit limit (sys.get_int_max_str_digits)
        raise RuleViolation("the body is not acceptable JSON: an integer has too many digits") from None
    events = document if isinstance(document, list) else [document]
    if not events:
        raise RuleViolation("the batch is empty: send at least one event")
    dump = _dump_as_written if repeated else _dump
    try:
        texts = [dump(event) for event in events]
    except RecursionError:  # a key named twice (written back by hand, recursively) beside deep nesting
        raise RuleViolation("the body is not acceptable JSON: it is nested too deeply") from None
    for index, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise RuleViolation(f"event {index} holds a lone surrogate: a string that is not Unicode text") from None
    return texts


class _AsWritten(dict[str, Any]):
    """A JSON object that named a key twice, keeping its pairs as they were written."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.pairs = pairs


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _dump_as_written(value: Any) -> str:
    """``_dump``, but an object that named a key twice is written with every pair it had."""
    if isinstance(value, _AsWritten):
        return "{" + ",".join(f"{_dump(key)}:{_dump_as_written(item)}" for key, item in value.pairs) + "}"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_dump(key)}:{_dump_as_written(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump_as_written(item) for item in value) + "]"
    return _dump(value)


# "api-<random>x<number of Celery messages>": the id alone tells how many batches to wait for.
_BATCH_ID = re.compile(r"^api-[0-9a-f]{20}x([0-9]{1,6})$")


def send(
    pipeline: PipelineClient, events: Sequence[str], batch_size: int, record: Callable[[str], None]
) -> tuple[str, int]:
    """Send events to the pipeline as batches of one run; return the run's id and the message count.

    ``record(batch_id)`` runs first (it keeps who sent the batch), so a sender can always ask after it.
    """
    chunks = [events[i : i + batch_size] for i in range(0, len(events), batch_size)]
    batch_id = f"api-{uuid.uuid4().hex[:20]}x{len(chunks)}"
    record(batch_id)
    return batch_id, pipeline.submit_run(batch_id, chunks)


def record_submission(session: Session, batch_id: str, token_id: str, now: datetime) -> None:
    """Keep which token sent ``batch_id`` (only it may read the batch's status)."""
    session.add(EventSubmission(batch_id=batch_id, token_id=token_id, created_at=now))
    session.commit()


def progress(
    session: Session, pipeline: PipelineClient, caller: Principal, batch_id: str
) -> tuple[IngestProgress, int]:
    """How far the pipeline has got with a batch id's messages, and how many messages it has.

    Only the ingest token that sent the batch sees it (the platform admin sees every batch): another
    token, and an id never issued, get the same ``NotFound``.
    """
    match = _BATCH_ID.match(batch_id)
    sent = session.get(EventSubmission, batch_id) if match else None
    if match is None or sent is None or (caller.kind == "ingest" and sent.token_id != caller.token_id):
        raise NotFound(f"no batch {batch_id!r}")
    return pipeline.progress(batch_id), int(match.group(1))
