"""Hostile CloudEvents through ``POST /v1/events`` (the admin service's app, a real database, a real worker).

Hypothesis builds each request: good events of a seeded trace with hostile ones mixed in (mutated
events, any JSON value, texts with a key twice, a NUL, a lone surrogate, deep nesting, huge numbers),
or a hostile body alone (any bytes, any content type, any token). Every answer is a 202 or a 4xx;
a refused batch's good events are sent again alone, as a producer would. At the end, the rejected
rows are exactly the hostile events the public decoder refuses, and the good accounts' usage equals
the independent computation over the good events (``tests/integration/independent_usage.py``).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from tests.admin_world import World
from tests.hostile_events import hostile_json_texts, record_figures, rejected_by_contract
from tests.integration.admin_setup import ingest_headers_for, served_world
from tests.integration.independent_usage import usage_differences
from tests.strategies import generate_trace

world = served_world
GOOD_PER_REQUEST = 12
EXAMPLES = 40
CONTENT_TYPES = ("application/cloudevents-batch+json", "application/cloudevents+json", "application/json",
                 "text/plain", "application/cloudevents-batch+json; charset=utf-8", "")  # fmt: skip


class Sent:
    """What the suite sent and was answered: good events accepted, batches to wait for, rejections due."""

    def __init__(self, trace: list[dict[str, Any]]) -> None:
        self.trace, self.good, self.batches = trace, [], []
        self.rejections_due, self.inputs = 0, 0
        self.statuses: Counter[str] = Counter()

    def next_good(self) -> list[dict[str, Any]]:
        start = len(self.good)
        return self.trace[start : start + GOOD_PER_REQUEST]


def _post(world: World, sent: Sent, body: bytes, headers: dict[str, str]) -> int:
    response = world.client.post("/v1/events", content=body, headers=headers)
    sent.statuses[str(response.status_code)] += 1
    assert response.status_code == 202 or 400 <= response.status_code < 500, (response.status_code, response.text)
    if response.status_code == 202:
        sent.batches.append(response.json()["batch_id"])
    else:
        assert response.json()["detail"], response.text  # a 4xx says why
    return response.status_code


@st.composite
def mixed_batches(draw: st.DrawFn) -> tuple[list[str], list[int]]:
    """Hostile event texts, and where among the good events each goes."""
    hostile = draw(st.lists(hostile_json_texts(), min_size=1, max_size=12))
    places = [draw(st.integers(0, GOOD_PER_REQUEST)) for _ in hostile]
    return hostile, places


def _send_mixed(world: World, sent: Sent, headers: dict[str, str], hostile: list[str], places: list[int]) -> None:
    good = sent.next_good()
    texts = [json.dumps(event) for event in good]
    for place, hostile_text in sorted(zip(places, hostile, strict=True), reverse=True):
        texts.insert(min(place, len(texts)), hostile_text)
    sent.inputs += len(hostile)
    if _post(world, sent, ("[" + ",".join(texts) + "]").encode(), headers) == 202:
        sent.rejections_due += sum(rejected_by_contract(t) for t in hostile)
    elif good:  # the whole body was refused (a lone surrogate, deep nesting...): the producer sends the good ones again
        assert _post(world, sent, json.dumps(good).encode(), headers) == 202
    sent.good += good


def _send_body(world: World, sent: Sent, headers: dict[str, str], body: bytes, content_type: str, token: str) -> None:
    """A hostile body alone, under any content type and any token."""
    chosen = {**headers, "Content-Type": content_type}
    if token == "none":
        chosen.pop("Authorization")
    elif token == "garbage":
        chosen["Authorization"] = "Bearer fm_not-a-token"
    elif token == "user":
        chosen["Authorization"] = world.as_role("admin")["Authorization"]
    sent.inputs += 1
    if _post(world, sent, body, chosen) == 202:
        document = json.loads(body)
        elements = document if isinstance(document, list) else [document]
        sent.rejections_due += sum(rejected_by_contract(json.dumps(e)) for e in elements)


def _wait_for_batches(world: World, sent: Sent, headers: dict[str, str]) -> list[dict[str, Any]]:
    statuses = []
    deadline = time.monotonic() + 120
    for batch_id in sent.batches:
        while True:
            status = world.client.get(f"/v1/events/batches/{batch_id}", headers=headers).json()
            if status["done"]:
                statuses.append(status)
                break
            assert time.monotonic() < deadline, f"batch {batch_id} not processed in time: {status}"
            time.sleep(0.05)
    return statuses


@pytest.mark.usefixtures("worker")
def test_hostile_events_get_a_4xx_or_a_rejected_row_and_never_change_the_good_events_usage(world: World) -> None:
    headers = ingest_headers_for(world, "fuzz")
    # More than EXAMPLES requests' worth: Hypothesis runs more examples while it shrinks a failure.
    sent = Sent(generate_trace(seed=1313, n_events=GOOD_PER_REQUEST * EXAMPLES * 4))
    bodies = st.one_of(st.binary(max_size=120), hostile_json_texts().map(str.encode))

    @given(
        request=st.one_of(
            mixed_batches().map(lambda m: ("mixed", m)),
            st.tuples(
                bodies, st.sampled_from(CONTENT_TYPES), st.sampled_from(["ingest", "none", "garbage", "user"])
            ).map(lambda b: ("body", b)),
        )
    )
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def send(request: tuple[str, Any]) -> None:
        kind, args = request
        if kind == "mixed":
            _send_mixed(world, sent, headers, *args)
        else:
            _send_body(world, sent, headers, *args)

    send()
    statuses = _wait_for_batches(world, sent, headers)
    with world.engine.connect() as conn:
        rejected_rows = conn.execute(text("SELECT count(*) FROM rejected_event")).scalar_one()
    differences = usage_differences(world.engine, sent.good)
    record_figures(
        "POST /v1/events", sent.inputs, sent.statuses, crashes=0, good_events=len(sent.good),
        rejected_rows=rejected_rows, usage_differences=len(differences),
    )  # fmt: skip
    assert sum(s["rejected"] for s in statuses) == rejected_rows == sent.rejections_due
    assert differences == []
    assert len(sent.good) >= GOOD_PER_REQUEST and sent.rejections_due > 0  # the suite did send both kinds
