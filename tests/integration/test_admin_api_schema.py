"""schemathesis against the admin service's own OpenAPI spec: every operation, called with every role's token
(DESIGN.md "What each role may do"), an ingest token, another account's superuser and no token at all,
answers without a 5xx and within its schema.

Bounded for CI: ``EXAMPLES`` generated requests per operation, each sent by every caller (and once more
with the account id of the seeded account, where the path has one). Its figures (calls, answers by
status) are appended to ``tests/hostile_events.FIGURES``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.orm import Session

from billing.access import issue
from billing.domain.roles import ACCOUNT_ROLES, PLATFORM_ROLES
from metering.bootstrap import Runtime
from tests.admin_world import OWN, World, build_world
from tests.hostile_events import record_figures

EXAMPLES = 4
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]


@pytest.fixture(scope="module")
def world(runtime: Runtime) -> Iterator[World]:
    world = build_world(runtime.engine)
    with Session(runtime.engine, expire_on_commit=False) as session:
        world.tokens["ingest"] = issue(session, kind="ingest", name="schemathesis", now=world.clock.now).secret
        session.commit()
    with world.client:
        yield world


def callers(world: World) -> dict[str, dict[str, str]]:
    """Every caller's headers: each platform role, each account role of OWN, an ingest token, OTHER's
    superuser (OWN's resources are 404 to it) and nobody (401)."""
    bearer = {role: {"Authorization": f"Bearer {world.tokens[role]}"} for role in (*PLATFORM_ROLES, *ACCOUNT_ROLES)}
    return {
        **bearer,
        "ingest": {"Authorization": f"Bearer {world.tokens['ingest']}"},
        "other superuser": {"Authorization": f"Bearer {world.other_tokens['superuser']}"},
        "anonymous": {},
    }


def test_every_operation_answers_every_caller_without_5xx_and_within_its_schema(world: World) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", world.client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    spec = world.client.get("/openapi.json").json()
    assert len(operations) == sum(len(methods) for methods in spec["paths"].values()) > 50

    answers: Counter[str] = Counter()
    everyone = callers(world)
    for operation in operations:
        _exercise(operation, everyone, answers)
    extra = {"operations": len(operations), "callers": len(everyone), "examples_per_operation": EXAMPLES}
    record_figures("admin API (schemathesis)", sum(answers.values()), answers, crashes=0, **extra)


def _call_as_every_caller(case: schemathesis.Case, everyone: dict[str, dict[str, str]], answers: Counter[str]) -> None:
    for headers in everyone.values():
        response = case.call_and_validate(headers=headers, checks=CHECKS)
        answers[str(response.status_code)] += 1


def _exercise(operation: Any, everyone: dict[str, dict[str, str]], answers: Counter[str]) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: schemathesis.Case) -> None:
        _call_as_every_caller(case, everyone, answers)
        # Random ids mostly reach 404s: run the same request against an account that exists.
        if case.path_parameters and "account_id" in case.path_parameters:
            case.path_parameters["account_id"] = OWN
            _call_as_every_caller(case, everyone, answers)

    check()
