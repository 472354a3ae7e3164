"""docs/architecture.md names real files: a path it gives that no longer exists fails here."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_PATH = re.compile(r"`((?:kernel|metering|billing|broker|fanmeter|migrations|tests|docs)/[\w/.]*)`")


def named_paths(text: str) -> set[str]:
    return set(_PATH.findall(text))


def test_the_path_finder_reads_code_spans_only():
    assert named_paths("see `broker/usage/meter.py` and broker/app.py, `kernel/`") == {
        "broker/usage/meter.py",
        "kernel/",
    }


def test_every_path_the_architecture_page_names_exists():
    paths = named_paths((ROOT / "docs" / "architecture.md").read_text(encoding="utf-8"))
    assert len(paths) > 30
    assert sorted(p for p in paths if not (ROOT / p).exists()) == []
