"""Test tiers by directory: each test gets the marker of its folder; a test elsewhere is an error."""

from __future__ import annotations

from pathlib import Path

import pytest

TIERS = ("unit", "property", "integration", "e2e", "faults")
TESTS = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        relative = Path(str(item.fspath)).resolve().relative_to(TESTS.resolve())
        tier = relative.parts[0]
        if tier not in TIERS:
            raise pytest.UsageError(f"{relative}: tests live in one of tests/{{{','.join(TIERS)}}}/")
        item.add_marker(getattr(pytest.mark, tier))
