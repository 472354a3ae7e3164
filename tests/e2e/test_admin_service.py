"""`fanmeter admin` served by uvicorn, driven over real HTTP; `fanmeter token create` bootstraps it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.stack import run_cli, running_admin
from tests.strategies import close_event, open_event, published_event, utc_micros


@pytest.fixture(scope="module")
def admin_url(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_admin(stack_env, tmp_path_factory.mktemp("admin") / "admin.log") as admin:
        yield admin.url


@pytest.fixture(scope="module")
def admin_token(stack_env: dict[str, str]) -> str:
    created = run_cli(stack_env, "token", "create", "--role", "admin", "--email", "root@example.test")
    assert created.returncode == 0, created.stderr
    return created.stdout.strip().splitlines()[-1]


def test_token_create_bootstraps_an_admin_who_runs_the_service_over_http(admin_url: str, admin_token: str) -> None:
    with httpx.Client(base_url=admin_url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=10) as admin:
        account = admin.post("/v1/accounts", json={"name": "Hooli", "plan": "paid", "id": "hooli"})
        ingest = admin.post("/v1/ingest-tokens", json={"name": "e2e"})
        assert (account.status_code, ingest.status_code) == (201, 201)
        _send_events(admin_url, ingest.json()["token"])

        may = admin.get("/v1/accounts/hooli/usage", params={"month": "2026-05"}).json()
        june = admin.get("/v1/accounts/hooli/usage", params={"month": "2026-06"}).json()
    assert (may["connection_minutes"], june["connection_minutes"]) == (1, 1)  # minute 2 begins in June
    assert (may["messages_published"], june["bytes_out"]) == (5, 2_000)
    assert 'fanmeter_events_total{outcome="accepted"}' in httpx.get(f"{admin_url}/metrics").text


def _send_events(admin_url: str, ingest_token: str) -> None:
    headers = {"Authorization": f"Bearer {ingest_token}", "Content-Type": "application/cloudevents-batch+json"}
    t = utc_micros("2026-05-31T23:59:30Z")
    events = [
        open_event(t, account="hooli", service="svc", connection="c"),
        close_event(t + 61_000_000, 2_000, account="hooli", service="svc", connection="c"),
        published_event(t, 5, account="hooli", service="svc"),
    ]
    with httpx.Client(base_url=admin_url, headers=headers, timeout=10) as producer:
        batch_id = producer.post("/v1/events", content=json.dumps(events)).json()["batch_id"]
        _wait_done(producer, batch_id)


def _wait_done(client: httpx.Client, batch_id: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if client.get(f"/v1/events/batches/{batch_id}").json()["done"]:
            return
        time.sleep(0.2)
    raise AssertionError(f"batch {batch_id} not processed")


def test_the_openapi_document_and_docs_page_are_served(admin_url: str) -> None:
    spec = httpx.get(f"{admin_url}/openapi.json").json()

    assert "/v1/accounts/{account_id}/usage" in spec["paths"]
    assert "swagger" in httpx.get(f"{admin_url}/docs").text.lower()


def test_token_create_for_an_account_role_needs_the_account(stack_env: dict[str, str]) -> None:
    result = run_cli(stack_env, "token", "create", "--role", "engineer")

    assert result.returncode != 0
    assert "--account is required" in result.stderr


def test_token_create_for_a_missing_account_says_so(stack_env: dict[str, str]) -> None:
    result = run_cli(stack_env, "token", "create", "--role", "billing", "--account", "acc_missing")

    assert result.returncode != 0
    assert "no account 'acc_missing'" in result.stderr
