"""Hostile files through the real ``fanmeter ingest`` command (a real worker, a real database).

Hypothesis writes each file: the next good events of a seeded trace with hostile lines between
them (any text, bytes that are not UTF-8, mutated events, a key twice, a NUL, deep nesting...),
as JSON lines or as one batch array. Every run exits 0 without a traceback; the rejected rows grow
by exactly the hostile texts the public decoder refuses, and the good accounts' usage equals the
independent computation (``tests/integration/independent_usage.py``).
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, text

from fanmeter.reader import iter_event_texts
from tests.hostile_events import (
    hostile_json_texts,
    hostile_lines,
    record_figures,
    rejected_by_contract,
    well_formed,
)
from tests.integration.independent_usage import usage_differences
from tests.stack import run_cli, settings_for
from tests.strategies import generate_trace

GOOD_PER_FILE = 40
RUNS = 2


@pytest.fixture(scope="module")
def engine(stack_env: dict[str, str]) -> Iterator[Engine]:
    engine = create_engine(settings_for(stack_env).resolved_database_url)
    yield engine
    engine.dispose()


def _rejections_due(pieces: list[bytes], array: bool) -> int:
    """How many rejected rows the hostile ``pieces`` must give: each text the reader makes of them that the
    public decoder refuses (an array element is one text; a line may hold several)."""
    if array:
        return sum(rejected_by_contract(piece.decode()) for piece in pieces)
    texts = (t for piece in pieces for t in iter_event_texts(io.StringIO(piece.decode("utf-8", errors="replace"))))
    return sum(rejected_by_contract(t) for t in texts)


@st.composite
def hostile_files(draw: st.DrawFn) -> tuple[bool, list[bytes], list[int]]:
    """JSON lines or a batch array; the hostile pieces; where among the good events each goes."""
    array = draw(st.booleans())
    if array:
        pieces = draw(st.lists(hostile_json_texts().filter(well_formed).map(str.encode), min_size=10, max_size=40))
    else:
        not_utf8 = st.binary(min_size=1, max_size=20).filter(lambda b: b"\n" not in b and b"\r" not in b)
        pieces = draw(st.lists(hostile_lines().map(str.encode) | not_utf8, min_size=10, max_size=40))
    return array, pieces, [draw(st.integers(0, GOOD_PER_FILE)) for _ in pieces]


def _write(path: Path, array: bool, events: list[dict[str, Any]], pieces: list[bytes], places: list[int]) -> Path:
    parts = [json.dumps(event).encode() for event in events]
    for place, piece in sorted(zip(places, pieces, strict=True), reverse=True):
        parts.insert(min(place, len(parts)), piece)
    path.write_bytes(b"[" + b",\n".join(parts) + b"]\n" if array else b"\n".join(parts) + b"\n")
    return path


def _rejected_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM rejected_event")).scalar_one())


def test_hostile_files_through_fanmeter_ingest_exit_0_reject_each_bad_text_and_leave_good_usage_exact(
    stack_env: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    trace = generate_trace(seed=1314, n_events=GOOD_PER_FILE * RUNS * 3, accounts=2)
    good: list[dict[str, Any]] = []
    exits: Counter[str] = Counter()
    inputs = 0
    due = _rejected_rows(engine)

    @given(st.lists(hostile_files(), min_size=3, max_size=3))
    @settings(max_examples=RUNS, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(files: list[tuple[bool, list[bytes], list[int]]]) -> None:
        nonlocal inputs, due
        paths, sent = [], []
        for array, pieces, places in files:
            events = trace[len(good) + len(sent) : len(good) + len(sent) + GOOD_PER_FILE]
            paths.append(_write(tmp_path / f"hostile-{inputs}-{len(paths)}.jsonl", array, events, pieces, places))
            inputs += len(pieces)
            due += _rejections_due(pieces, array)
            sent += events
        done = run_cli(stack_env, "ingest", *map(str, paths), "--batch-size", "7", timeout=300)
        exits[f"exit {done.returncode}"] += 1
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        good.extend(sent)
        assert _rejected_rows(engine) == due, done.stdout

    run()
    differences = usage_differences(engine, good)
    record_figures("fanmeter ingest", inputs, exits, crashes=0, good_events=len(good),
                   usage_differences=len(differences))  # fmt: skip
    assert differences == []
