"""The pure domains import no framework, and dependencies point one way (broker and metering never use billing)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FRAMEWORKS = frozenset(
    {"sqlalchemy", "fastapi", "starlette", "celery", "kombu", "pandas", "numpy", "httpx", "redis", "pydantic"}
)


def python_files(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def imported_modules(source: str, module_path: tuple[str, ...] = ()) -> set[str]:
    """Every module a source file imports: plain, from, relative (resolved) and importlib with a literal."""
    package = module_path[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else ()
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" if module else alias.name for alias in node.names)
        elif isinstance(node, ast.Call) and _is_dynamic_import(node):
            found.add(ast.literal_eval(node.args[0]))
    return found


def _is_dynamic_import(node: ast.Call) -> bool:
    name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
    has_literal = bool(node.args) and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
    return name in ("import_module", "__import__") and has_literal


def violations(folder: str, forbidden: frozenset[str]) -> list[str]:
    found = []
    for path in python_files(folder):
        relative = path.relative_to(ROOT)
        module_path = (*relative.parts[:-1], relative.stem)
        for module in sorted(imported_modules(path.read_text(encoding="utf-8"), module_path)):
            if module.split(".")[0] in forbidden:
                found.append(f"{relative} imports {module}")
    return found


# --- the scanner itself: these make sure the structural tests below can fail ------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import pandas as pd", "pandas"),
        ("import numpy.typing", "numpy.typing"),
        ("from sqlalchemy.orm import Session", "sqlalchemy.orm"),
        ("def f():\n    from celery import shared_task", "celery"),
        ("try:\n    import redis\nexcept ImportError:\n    redis = None", "redis"),
        ("import importlib\nhttpx = importlib.import_module('httpx')", "httpx"),
        ("kombu = __import__('kombu')", "kombu"),
        ("from billing.domain import money", "billing.domain"),
    ],
)
def test_the_import_scanner_finds_every_form_of_import(source, expected):
    assert expected in imported_modules(source, ("metering", "domain", "x"))


def test_the_import_scanner_resolves_relative_imports_against_the_files_package():
    found = imported_modules("from ...billing import money\nfrom . import events", ("metering", "domain", "usage"))

    assert "billing" in found
    assert "billing.money" in found
    assert "metering.domain.events" in found


# --- the rules --------------------------------------------------------------------------------


def test_the_metering_domain_exists_and_is_scanned():
    assert len(python_files("metering/domain")) >= 5


def test_the_metering_domain_imports_no_framework_and_nothing_from_billing():
    assert violations("metering/domain", FRAMEWORKS | {"billing"}) == []


def test_the_billing_domain_imports_no_framework():
    assert violations("billing/domain", FRAMEWORKS) == []


BROKER_PURE = ("grip", "publish", "wsevents", "events", "config", "exceptions", "service_rows")


def test_the_broker_imports_nothing_from_billing():
    assert violations("broker", frozenset({"billing"})) == []


def test_the_brokers_pure_modules_import_no_framework_and_no_io_library():
    found = [v for v in violations("broker", FRAMEWORKS | {"jwt", "uvicorn", "websockets", "sqlite3", "asyncio"})
             if v.split(" ")[0].removeprefix("broker/").removesuffix(".py") in BROKER_PURE]  # fmt: skip
    assert found == []
    assert all((ROOT / "broker" / f"{name}.py").exists() for name in BROKER_PURE)
