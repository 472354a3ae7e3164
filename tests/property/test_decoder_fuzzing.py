"""The atheris harness (fuzz/fuzz_decoder.py) runs libFuzzer over the event decoder and finds no crash."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[2] / "fuzz" / "fuzz_decoder.py"
RUNS = 3000


def test_libfuzzer_over_the_decoder_finds_no_crash_in_a_bounded_run(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(HARNESS), f"-runs={RUNS}", f"-artifact_prefix={tmp_path}/", "-seed=1313"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-4000:]
    assert re.search(rf"^Done {RUNS} runs in", done.stderr, re.MULTILINE), done.stderr[-2000:]
    assert not list(tmp_path.glob("crash-*"))
