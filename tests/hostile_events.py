"""Hostile CloudEvents for the fuzzing suites (issue 13, "Hostile input"), and how to check what they did.

A hostile event is built on an account and a source of its own (``HOSTILE_ACCOUNT``,
``HOSTILE_SOURCE``): whatever the pipeline makes of it, the usage of the good accounts
(``tests.strategies.ACCOUNTS``/``generate_trace``) must equal the independent computation over
the good events alone. What the pipeline ought to make of each text is asked of the public
decoder (``decode_event``), so these suites keep working whatever decoder sits behind it.

Each suite appends its figures (inputs tried, answers by status, crashes) as one JSON line to
``FIGURES`` (``FANMETER_HOSTILE_FIGURES`` names another file); docs/reliability.md quotes them.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from metering.domain.events import MAX_BYTES, MAX_COUNT, MAX_ID_LENGTH, MeteringEvent, decode_event
from tests.strategies import NODES, TRANSPORTS, cloud_event

HOSTILE_ACCOUNT = "acct-hostile"
HOSTILE_SOURCE = "broker/hostile"
FIGURES = Path(os.environ.get("FANMETER_HOSTILE_FIGURES", "/tmp/fanmeter-hostile-figures.jsonl"))

# Values on or past the contract's edges, of every JSON type.
ODD_VALUES = st.one_of(
    st.sampled_from([None, True, False, 0, -1, 1.5, "", "x" * MAX_ID_LENGTH, "x" * (MAX_ID_LENGTH + 1), [], {}]),
    st.sampled_from([MAX_COUNT, MAX_COUNT + 1, MAX_BYTES, MAX_BYTES + 1, 2**64, -(2**63), 10**30, "1.0", "sse"]),
    st.sampled_from(["fanout.connection.open", "fanout.message.published", "fanout.nope", "2026-02-30T00:00:00Z"]),
    st.sampled_from(["2026-01-31T23:59:60Z", "2026-01-31T23:59:30", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"]),
    st.text(max_size=12),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=16),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_TOP = ["specversion", "id", "source", "type", "time", "subject", "datacontenttype", "data"]
_DATA = ["account_id", "service_id", "connection_id", "channel", "transport", "count", "bytes", "bytes_out",
         "bytes_in", "reason"]  # fmt: skip
_TYPES = ("fanout.connection.open", "fanout.connection.alive", "fanout.connection.close",
          "fanout.message.published", "fanout.message.delivered")  # fmt: skip


@st.composite
def base_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event of any type on the hostile account, with an id of its own."""
    event_type = draw(st.sampled_from(_TYPES))
    data: dict[str, Any] = {"account_id": HOSTILE_ACCOUNT, "service_id": "svc-hostile"}
    if event_type.startswith("fanout.connection."):
        data["connection_id"] = f"conn-{draw(st.integers(0, 3))}"
        if event_type.endswith("open"):
            data["transport"] = draw(st.sampled_from(TRANSPORTS))
        else:
            data |= {"bytes_out": draw(st.integers(0, 10**6)), "bytes_in": draw(st.integers(0, 10**6))}
    else:
        data |= {"channel": "news", "count": draw(st.integers(1, 100)), "bytes": 10}
    when = f"2026-01-{draw(st.integers(1, 31)):02d}T{draw(st.integers(0, 23)):02d}:00:00Z"
    return cloud_event(event_type, when, data, source=HOSTILE_SOURCE, id=f"h-{draw(st.integers(0, 10**9))}")


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid hostile event with up to four attributes or data fields replaced by odd values, or removed."""
    event = draw(base_events())
    for _ in range(draw(st.integers(1, 4))):
        in_data = draw(st.booleans()) and isinstance(event.get("data"), dict)
        target = event["data"] if in_data else event
        name = draw(st.sampled_from(_DATA if in_data else _TOP))
        if draw(st.integers(0, 4)) == 0:
            target.pop(name, None)
        else:
            target[name] = draw(ODD_VALUES | JSON_VALUES)
    return _kept_apart(event)


def _kept_apart(event: dict[str, Any]) -> dict[str, Any]:
    """Never the source of a good node nor a good account: a mutation must not speak for them."""
    if event.get("source") in NODES:
        event["source"] = HOSTILE_SOURCE
    data = event.get("data")
    if isinstance(data, dict) and isinstance(data.get("account_id"), str) and data["account_id"].startswith("acct-"):
        data["account_id"] = HOSTILE_ACCOUNT
    return event


def _with_text(draw: st.DrawFn, replace: str) -> str:
    """A base event's JSON text whose ``"channel": "news"`` or ``"service_id"`` value is ``replace``d."""
    text = json.dumps(draw(base_events()))
    return text.replace('"svc-hostile"', replace, 1)


@st.composite
def crafted_texts(draw: st.DrawFn) -> str:
    """Event texts no JSON encoder writes: a key twice, a NUL, a lone surrogate, nesting, huge numbers, NaN."""
    kind = draw(st.sampled_from(["twice", "nul", "surrogate", "deep", "digits", "nan", "cut"]))
    if kind == "twice":
        return _with_text(draw, '"svc-hostile", "service_id": "svc-other"')
    if kind == "nul":
        return _with_text(draw, '"svc\\u0000hostile"')
    if kind == "surrogate":
        return _with_text(draw, '"svc\\ud800"')
    if kind == "deep":
        depth = draw(st.sampled_from([40, 1000, 100_000]))
        return _with_text(draw, "[" * depth + "]" * depth)
    if kind == "digits":
        return _with_text(draw, "9" * draw(st.sampled_from([25, 5000])))
    if kind == "nan":
        return _with_text(draw, draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999"])))
    whole = json.dumps(draw(base_events()))
    return whole[: draw(st.integers(1, len(whole) - 1))]


def hostile_json_texts() -> st.SearchStrategy[str]:
    """One hostile event's text: a mutated event, any JSON value, or a crafted text (all valid JSON
    syntax but ``cut``, so each can stand as an element of a batch array where it is JSON)."""
    return st.one_of(
        mutated_events().map(json.dumps),
        JSON_VALUES.map(json.dumps),
        crafted_texts(),
    )


def hostile_lines() -> st.SearchStrategy[str]:
    """One line of a JSON-lines file: a hostile JSON text, or any text at all (no line break in it)."""
    return st.one_of(hostile_json_texts(), st.text(max_size=60)).map(lambda t: t.replace("\n", " ").replace("\r", " "))


def well_formed(text: str) -> bool:
    """JSON syntax, even where Python's parser refuses it (nested too deeply, an integer too long)."""
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    except (RecursionError, ValueError):
        return True
    return True


def rejected_by_contract(text: str) -> bool:
    """Whether the public decoder refuses ``text`` (so the pipeline must store a rejected-event row)."""
    return not isinstance(decode_event(text), MeteringEvent)


def record_figures(suite: str, inputs: int, statuses: Counter[str], crashes: int, **extra: Any) -> None:
    """Append one suite's figures to ``FIGURES`` and print them (``pytest -s`` shows them)."""
    line = {"suite": suite, "inputs": inputs, "answers": dict(sorted(statuses.items())), "crashes": crashes, **extra}
    with FIGURES.open("a") as out:
        out.write(json.dumps(line) + "\n")
    print(json.dumps(line))  # noqa: T201
