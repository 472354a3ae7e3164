"""libFuzzer (atheris) over the event decoder, through its public functions.

Every input (bytes, read as UTF-8 with replacement, as a producer's text arrives) goes through
``decode_event`` (the reference path) and ``decode_row`` (the ingest hot path). Either may only
answer an event or a ``Rejection``; an exception escaping either, or the two answering
differently, is a crash libFuzzer reports with the input that caused it. Whatever decoder sits
behind those two functions is what is fuzzed.

    python fuzz/fuzz_decoder.py -runs=100000            # bounded; seeds itself with valid events
    python fuzz/fuzz_decoder.py -max_total_time=600 my-corpus/

Any other libFuzzer flag passes through (``-help=1`` lists them). The seed corpus (one valid event
of each type) is written to a temporary directory unless a corpus directory is given;
``fuzz/regressions/`` (the inputs of crashes found before, each kept under a name saying what it
broke) is always run too; the dictionary ``fuzz/event.dict`` holds the contract's names.
libFuzzer ends with ``Done N runs`` on stderr when nothing crashed (exit 0); a crash exits non-zero
and writes ``crash-<sha1>`` under ``-artifact_prefix`` (this script's default: the temporary directory).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from metering.domain.event_rows import decode_row, event_row
    from metering.domain.events import MeteringEvent, Rejection, decode_event

DICTIONARY = Path(__file__).with_name("event.dict")
REGRESSIONS = Path(__file__).with_name("regressions")  # every crash found so far, run first on every run
_CONNECTION = {"account_id": "acct-1", "service_id": "svc-1", "connection_id": "c-1"}
SEEDS = {
    "fanout.connection.open": {**_CONNECTION, "transport": "sse"},
    "fanout.connection.alive": {**_CONNECTION, "bytes_out": 10, "bytes_in": 2},
    "fanout.connection.close": {**_CONNECTION, "bytes_out": 10, "bytes_in": 2, "reason": "client-closed"},
    "fanout.message.published": {"account_id": "acct-1", "service_id": "svc-1", "channel": "news", "count": 3,
                                 "bytes": 40},
    "fanout.message.delivered": {"account_id": "acct-1", "service_id": "svc-1", "channel": "news", "count": 9,
                                 "bytes": 120},
}  # fmt: skip


def check_one_input(data: bytes) -> None:
    """Decode ``data`` both ways; raise if either path raises, answers something else, or they differ."""
    text = data.decode("utf-8", errors="replace")
    reference = decode_event(text)
    if not isinstance(reference, MeteringEvent | Rejection):
        raise AssertionError(f"decode_event answered {reference!r}")
    expected = event_row(reference) if isinstance(reference, MeteringEvent) else reference
    row = decode_row(text)
    if row != expected:
        raise AssertionError(f"decode_row answered {row!r}, decode_event {expected!r}")


def write_seeds(directory: Path) -> None:
    for n, (event_type, data) in enumerate(SEEDS.items()):
        event = {"specversion": "1.0", "id": f"e-{n}", "source": "broker/node-1", "type": event_type,
                 "time": "2026-01-31T23:59:30.5+00:00", "subject": "svc-1", "data": data}  # fmt: skip
        (directory / f"seed-{n}.json").write_text(json.dumps(event))


def main(argv: list[str]) -> None:
    flags = [arg for arg in argv[1:] if arg.startswith("-")]
    corpora = [arg for arg in argv[1:] if not arg.startswith("-")]
    scratch = Path(tempfile.mkdtemp(prefix="fanmeter-fuzz-"))
    if not corpora:  # libFuzzer adds what it finds to the first directory: a fresh one, seeded
        corpus = scratch / "corpus"
        corpus.mkdir()
        write_seeds(corpus)
        corpora = [str(corpus)]
    corpora.append(str(REGRESSIONS))
    if not any(flag.startswith("-artifact_prefix=") for flag in flags):
        flags.append(f"-artifact_prefix={scratch}/")
    if not any(flag.startswith("-dict=") for flag in flags):
        flags.append(f"-dict={DICTIONARY}")
    atheris.Setup([argv[0], *flags, *corpora], check_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
