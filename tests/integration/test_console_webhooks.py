"""The console's webhook pages over HTTP: register with the secret shown once, refusals beside their
field, the delivery log with redeliver and enable/disable, and who may open them."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from billing.orm import AuditEntry
from billing.webhooks import events, outbox
from billing.webhooks.orm import WebhookDelivery, WebhookEndpoint
from tests.admin_world import OTHER, OWN, World, build_world
from tests.integration.test_console_pages import form_token, sign_in

URL = "https://93.184.215.14/hooks"  # a public IP literal: accepted without DNS, never called here
LIST = f"/console/accounts/{OWN}/webhooks"


@pytest.fixture
def world(engine: Engine) -> Iterator[World]:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM console_session"))
    world = build_world(engine)
    with world.client:
        yield world


def register(world: World, path: str, **fields: str) -> tuple[int, str]:
    data = {"csrf_token": form_token(world.client, path), "url": URL, "event_statement.finalized": "on", **fields}
    answer = world.client.post(path, data=data, follow_redirects=False)
    return answer.status_code, answer.headers.get("location", answer.text)


def test_a_superuser_registers_an_endpoint_and_sees_its_secret_once(world: World) -> None:
    sign_in(world.client, world.tokens["superuser"])

    status, location = register(world, LIST, description="ERP")
    shown = world.client.get(location).text
    again = world.client.get(location).text

    assert (status, location) == (303, f"{LIST}?new=endpoint")
    secret = re.search(r"<code>(whsec_[A-Za-z0-9+/=]+)</code>", shown)
    assert secret is not None and "shown this once" in shown
    with Session(world.engine) as session:
        [row] = session.scalars(select(WebhookEndpoint))
        assert (row.secret, row.account_id, row.event_types) == (secret.group(1), OWN, ["statement.finalized"])
    assert secret.group(1) not in again and "cannot be shown again" in again
    assert URL in again and "ERP" in again


def test_a_refused_url_or_no_event_type_is_shown_beside_its_field(world: World) -> None:
    sign_in(world.client, world.tokens["superuser"])

    loopback, page = register(world, LIST, url="http://127.0.0.1/x")
    data = {"csrf_token": form_token(world.client, LIST), "url": URL}
    none_chosen = world.client.post(LIST, data=data, follow_redirects=False)

    assert loopback == 400 and 'id="f-url-error"' in page and "127.0.0.1 is a loopback address" in page
    assert none_chosen.status_code == 400 and 'id="f-event-types-error"' in none_chosen.text
    with Session(world.engine) as session:
        assert session.scalars(select(WebhookEndpoint)).all() == []


def test_the_endpoint_page_shows_the_log_and_redelivers_and_disables(world: World) -> None:
    sign_in(world.client, world.tokens["superuser"])
    register(world, LIST)
    with Session(world.engine) as session:
        endpoint_id = session.scalars(select(WebhookEndpoint.id)).one()
    with world.engine.begin() as conn:
        event_id = outbox.record_event(conn, events.STATEMENT_FINALIZED, OWN, {"account_id": OWN})
    with Session(world.engine) as session:
        delivery_id = session.scalars(select(WebhookDelivery.id)).one()
    page_path = f"/console/webhooks/{endpoint_id}"

    log = world.client.get(page_path).text
    token = form_token(world.client, page_path)
    redelivered = world.client.post(
        f"{page_path}/deliveries/{delivery_id}/redeliver", data={"csrf_token": token}, follow_redirects=False
    )
    disabled = world.client.post(f"{page_path}/enabled", data={"csrf_token": token}, follow_redirects=False)
    after = world.client.get(disabled.headers["location"]).text

    assert event_id in log and "not tried yet" in log and "Statement finalized" in log
    assert redelivered.status_code == 303 and disabled.status_code == 303
    assert "Disabled: nothing is sent" in after and ">Enable<" in after
    with Session(world.engine) as session:
        actions = list(session.scalars(select(AuditEntry.action).where(AuditEntry.target.like("webhook-endpoint/%"))))
    assert actions == ["webhook.endpoint.create", "webhook.delivery.redeliver", "webhook.endpoint.disable"]


PAGE_ANSWERS = [
    ("superuser", LIST, 200),
    ("engineer", LIST, 403),
    ("billing", LIST, 403),
    ("user", LIST, 403),
    ("admin", LIST, 403),
    ("finance", LIST, 403),
    ("superuser", f"/console/accounts/{OTHER}/webhooks", 404),
    ("admin", "/console/platform/webhooks", 200),
    ("finance", "/console/platform/webhooks", 200),
    ("superuser", "/console/platform/webhooks", 403),
    ("engineer", "/console/platform/webhooks", 403),
]


def test_who_may_open_the_webhook_pages(world: World) -> None:
    wrong = []
    for role, path, status in PAGE_ANSWERS:
        sign_in(world.client, world.tokens[role])
        answer = world.client.get(path, follow_redirects=False)
        if answer.status_code != status:
            wrong.append(f"{path} as {role}: {answer.status_code}, expected {status}")
        elif status == 200 and 'aria-current="page">Webhooks</a>' not in answer.text:
            wrong.append(f"{path} as {role}: not marked in the navigation")
    assert wrong == []


def test_only_those_who_may_manage_endpoints_see_webhooks_in_the_navigation(world: World) -> None:
    shown = {}
    for role in ("admin", "finance", "superuser", "engineer", "billing", "user"):
        sign_in(world.client, world.tokens[role])
        home = world.client.get("/console/")  # each person's first page, with their navigation
        assert home.status_code == 200 and 'aria-label="Main"' in home.text
        shown[role] = ">Webhooks</a>" in home.text
    assert shown == {
        "admin": True,
        "finance": True,
        "superuser": True,
        "engineer": False,
        "billing": False,
        "user": False,
    }


def test_another_accounts_endpoint_page_is_not_found(world: World) -> None:
    sign_in(world.client, world.other_tokens["superuser"])
    register(world, f"/console/accounts/{OTHER}/webhooks")
    with Session(world.engine) as session:
        endpoint_id = session.scalars(select(WebhookEndpoint.id)).one()
    sign_in(world.client, world.tokens["superuser"])

    assert world.client.get(f"/console/webhooks/{endpoint_id}").status_code == 404
