"""schemathesis against the OpenAPI spec of the rate-card, statement and audit endpoints, as finance.

Any input the spec allows (and many it does not) must get an answer that is not a 5xx and
that matches the documented schema (status code, content type, body).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.admin_world import World, build_world

PATHS = r"^/v1/(rate-cards|audit|accounts/\{account_id\}/(rate-card|statements|audit))"


@pytest.fixture(scope="module")
def world(runtime: Any) -> Iterator[World]:
    world = build_world(runtime.engine)
    world.clock.now = datetime(2026, 4, 10, tzinfo=UTC)
    with world.client:
        yield world


def test_no_input_gets_a_5xx_or_a_response_outside_the_schema(world: World) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", world.client.app).include(path_regex=PATHS)
    headers = world.as_role("finance")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 19

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: Any) -> None:
            response = case.call(headers=headers)
            assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"
            # Bodies the spec allows can still break a domain rule (a card whose last tier is
            # bounded, an adjustment of 0.00): those answer 400 with the reason, by design.
            case.validate_response(response, excluded_checks=[schemathesis.checks.positive_data_acceptance])

        check()
