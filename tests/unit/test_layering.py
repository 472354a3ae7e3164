"""The layering of the whole tree: which package may import which, and the pure modules stay pure.

Each rule is data (``RULES``); the scanner reads every import form and also module paths written
as strings (Celery ``include`` lists, beat entries, task names, uvicorn factories), so an arrow by
string obeys the same rules as an import. Each rule is shown to fail on a planted violation.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = frozenset({"kernel", "metering", "billing", "broker", "fanmeter", "migrations"})
FRAMEWORKS = frozenset(
    {"sqlalchemy", "fastapi", "starlette", "celery", "kombu", "pandas", "numpy", "httpx", "redis", "pydantic"}
)
IO_LIBRARIES = frozenset({"jwt", "uvicorn", "websockets", "sqlite3", "asyncio", "socket", "zmq"})
# The kernel's modules that do I/O or need a framework; its time values are pure.
KERNEL_IMPURE = frozenset({"kernel.db", "kernel.settings"})
# Metering's tables and the code that writes them: other packages go through its services.
METERING_INSIDES = frozenset({"metering.orm", "metering.repository", "metering.rollups"})
# A module path written as a string: "billing.tasks", "metering.tasks.rollup", "broker.bootstrap:app".
_MODULE_STRING = re.compile(rf"^(?:{'|'.join(sorted(PACKAGES))})(?:\.[A-Za-z_]\w*)+(?::[A-Za-z_]\w*)?$")


def python_files(root: Path, folder: str) -> list[Path]:
    return sorted(p for p in (root / folder).rglob("*.py") if "__pycache__" not in p.parts)


def imported_modules(source: str, module_path: tuple[str, ...] = ()) -> set[str]:
    """Every module a source file names: plain, from, relative (resolved), importlib, and module strings."""
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
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _is_module_string(node.value):
            found.add(node.value.split(":")[0])
    return found


def _is_module_string(value: str) -> bool:
    """A string naming a module of the tree (or a name in one), not a file name such as "fanmeter.db"."""
    if not _MODULE_STRING.match(value):
        return False
    parts = value.split(":")[0].split(".")
    return any(
        (ROOT.joinpath(*parts[:n]).with_suffix(".py")).exists() or (ROOT.joinpath(*parts[:n]) / "__init__.py").exists()
        for n in range(2, len(parts) + 1)
    )


def _is_dynamic_import(node: ast.Call) -> bool:
    name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
    has_literal = bool(node.args) and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
    return name in ("import_module", "__import__") and has_literal


def _names(module: str, forbidden: frozenset[str]) -> bool:
    return any(module == f or module.startswith(f + ".") for f in forbidden)


@dataclass(frozen=True)
class Rule:
    """Files under ``folder`` (only the modules ``only`` names, when given) import nothing ``forbidden``."""

    name: str
    folder: str
    forbidden: frozenset[str]
    planted: str  # a line that breaks the rule, to show the rule can fail
    only: tuple[str, ...] = ()

    def covers(self, relative: Path) -> bool:
        inside = relative.relative_to(self.folder).with_suffix("").as_posix()
        return not self.only or any(inside == o or inside.startswith(o + "/") for o in self.only)

    def violations(self, root: Path) -> list[str]:
        found = []
        for path in python_files(root, self.folder):
            relative = path.relative_to(root)
            if not self.covers(relative):
                continue
            module_path = (*relative.parts[:-1], relative.stem)
            for module in sorted(imported_modules(path.read_text(encoding="utf-8"), module_path)):
                if _names(module, self.forbidden):
                    found.append(f"{relative} imports {module}")
        return found


# The broker's protocol rules, service values and event builders: no framework, no I/O.
BROKER_PURE = ("grip", "services/model", "services/rows", "usage/events", "exceptions")

RULES = (
    Rule("the kernel imports none of the packages built on it", "kernel",
         PACKAGES - {"kernel"}, "from metering import service"),
    Rule("the kernel's time values and rate limits are pure", "kernel",
         FRAMEWORKS | IO_LIBRARIES | KERNEL_IMPURE, "import sqlalchemy", only=("instants", "rate_limit")),
    Rule("metering imports neither billing, broker, migrations nor fanmeter", "metering",
         frozenset({"billing", "broker", "migrations", "fanmeter"}), "from billing import tasks"),
    Rule("metering names no other package's Celery task by string", "metering",
         frozenset({"billing", "broker", "fanmeter"}), 'BEAT = {"task": "billing.tasks.build_due_drafts"}'),
    Rule("the metering domain imports no framework and only the kernel's pure values", "metering/domain",
         FRAMEWORKS | IO_LIBRARIES | KERNEL_IMPURE | {"billing", "broker"}, "from kernel.db import Base"),
    Rule("the billing domain imports no framework and only the kernel's pure values", "billing/domain",
         FRAMEWORKS | IO_LIBRARIES | KERNEL_IMPURE, "import pandas as pd"),
    Rule("billing imports neither broker, migrations nor fanmeter", "billing",
         frozenset({"broker", "migrations", "fanmeter"}), "import migrations"),
    Rule("billing reads metering through its services, never its tables", "billing",
         METERING_INSIDES, "from metering.orm import UsageDaily"),
    Rule("the broker imports neither billing, migrations nor fanmeter", "broker",
         frozenset({"billing", "migrations", "fanmeter"}), "from billing.orm import Service"),
    Rule("the broker reaches metering only through the pipeline client", "broker",
         METERING_INSIDES | {"metering.service", "metering.tasks", "metering.celery_app"},
         "from metering.tasks import ingest_batch"),
    Rule("the broker's pure modules import no framework and no I/O library", "broker",
         FRAMEWORKS | IO_LIBRARIES | KERNEL_IMPURE, "import asyncio", only=BROKER_PURE),
)  # fmt: skip


# --- the scanner itself ---------------------------------------------------------------------


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
        ("app = Celery('x', include=['billing.tasks'])", "billing.tasks"),
        ("BEAT = {'drafts': {'task': 'billing.tasks.build_due_drafts'}}", "billing.tasks.build_due_drafts"),
        ("FACTORY = 'broker.bootstrap:app_from_environment'", "broker.bootstrap"),
    ],
)
def test_the_import_scanner_finds_every_form_of_import(source, expected):
    assert expected in imported_modules(source, ("metering", "domain", "x"))


def test_the_import_scanner_resolves_relative_imports_against_the_files_package():
    found = imported_modules("from ...billing import money\nfrom . import events", ("metering", "domain", "usage"))

    assert "billing" in found
    assert "billing.money" in found
    assert "metering.domain.events" in found


def test_the_import_scanner_takes_prose_and_file_names_for_what_they_are():
    source = '"""See billing.tasks for the drafts."""\nNAME = "billing"\nFILE = "fanmeter.db"'
    assert imported_modules(source) == set()


# --- the rules ------------------------------------------------------------------------------


def test_the_rules_cover_every_package_of_the_tree():
    top_level = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()} - {"tests", "bench"}
    assert top_level == PACKAGES
    assert {rule.folder.split("/")[0] for rule in RULES} == PACKAGES - {"fanmeter", "migrations"}


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_the_tree_keeps_the_rule(rule):
    assert python_files(ROOT, rule.folder), f"{rule.folder} has no files: the rule scans nothing"
    assert rule.violations(ROOT) == []


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_the_rule_fails_on_a_planted_violation(rule, tmp_path):
    planted = Path(rule.folder, *(rule.only[0].split("/") if rule.only else ()), "planted.py")
    if rule.only and (ROOT / rule.folder / f"{rule.only[0]}.py").exists():
        planted = Path(rule.folder, f"{rule.only[0]}.py")  # the pure module is a file, not a folder
    (tmp_path / planted).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / planted).write_text(rule.planted + "\n", encoding="utf-8")

    found = rule.violations(tmp_path)
    assert found and all(line.startswith(f"{planted.as_posix()} imports ") for line in found)


def test_every_pure_module_the_broker_rule_names_exists():
    for name in BROKER_PURE:
        assert (ROOT / "broker" / f"{name}.py").exists() or (ROOT / "broker" / name).is_dir(), name
