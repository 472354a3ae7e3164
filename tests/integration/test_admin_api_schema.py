"""schemathesis against the admin service's own OpenAPI spec: no 5xx, no response off its schema."""

from __future__ import annotations

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
from metering.bootstrap import Runtime
from tests.admin_world import OWN, World, build_world

# Who calls: the two platform roles see every operation, a superuser the account side,
# and an ingest token the events endpoint.
CALLERS = ("admin", "finance", "superuser", "ingest")


@pytest.fixture(scope="module")
def world(runtime: Runtime) -> Iterator[World]:
    world = build_world(runtime.engine)
    with Session(runtime.engine, expire_on_commit=False) as session:
        world.tokens["ingest"] = issue(session, kind="ingest", name="schemathesis", now=world.clock.now).secret
        session.commit()
    with world.client:
        yield world


def test_the_api_answers_generated_requests_without_5xx_and_within_its_schema(world: World) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", world.client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 10

    for operation in operations:
        _exercise(operation, world)


def _call_as_every_caller(case: schemathesis.Case, world: World) -> None:
    for caller in CALLERS:
        case.call_and_validate(
            headers={"Authorization": f"Bearer {world.tokens[caller]}"},
            checks=[not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance],
        )


def _exercise(operation: Any, world: World) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: schemathesis.Case) -> None:
        _call_as_every_caller(case, world)
        # Random ids mostly reach 404s: run the same request against an account that exists.
        if case.path_parameters and "account_id" in case.path_parameters:
            case.path_parameters["account_id"] = OWN
            _call_as_every_caller(case, world)

    check()
