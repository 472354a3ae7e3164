"""Account products (Compute, Fanout) through the admin API: who may buy them, and the rules of the product page."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from billing.orm import AuditEntry
from tests.admin_world import OTHER, OWN, World, build_world


@pytest.fixture
def world(engine: Engine) -> Iterator[World]:
    world = build_world(engine)
    with world.client:
        yield world


def purchase(world: World, product: str, account: str = OWN, role: str = "superuser"):
    return world.client.put(f"/v1/accounts/{account}/products/{product}", headers=world.as_role(role, account))


def audit_entries(world: World, action: str) -> list[AuditEntry]:
    with Session(world.engine) as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def test_a_superuser_purchases_compute_then_fanout_on_a_paid_account(world: World) -> None:
    assert purchase(world, "compute").status_code == 200
    response = purchase(world, "fanout")

    assert response.status_code == 200
    assert response.json() == {
        "product": {"id": "fanout", "object": "product"},
        "account": {"id": OWN, "object": "account"},
        "enabled": True,
        "enabled_at": "2026-03-15T12:00:00Z",
    }
    account = world.client.get(f"/v1/accounts/{OWN}", headers=world.as_role("user")).json()
    assert account["products"] == ["compute", "fanout"]


def test_the_products_list_shows_both_products_purchased_or_not(world: World) -> None:
    purchase(world, "compute")

    listed = world.client.get(f"/v1/accounts/{OWN}/products", headers=world.as_role("billing")).json()

    assert [(p["product"]["id"], p["enabled"]) for p in listed] == [("compute", True), ("fanout", False)]


def test_purchasing_a_product_is_audited_with_before_and_after(world: World) -> None:
    purchase(world, "compute")

    [entry] = audit_entries(world, "product.purchase")
    assert (entry.actor, entry.account_id, entry.target) == (
        world.user_ids["superuser"],
        OWN,
        f"account/{OWN}/products/compute",
    )
    assert (entry.before["enabled"], entry.after["enabled"]) == (False, True)


def test_purchasing_a_product_already_held_changes_nothing(world: World) -> None:
    first = purchase(world, "compute").json()
    world.clock.advance(timedelta(days=1))

    assert purchase(world, "compute").json() == first
    assert len(audit_entries(world, "product.purchase")) == 1


@pytest.mark.parametrize("role", ["engineer", "billing", "user"])
def test_only_the_superuser_may_purchase_fanout_and_the_error_names_the_callers_role(world: World, role: str) -> None:
    purchase(world, "compute")

    response = purchase(world, "fanout", role=role)

    assert response.status_code == 403
    assert response.json() == {
        "detail": "only an account superuser can purchase or cancel products (Compute, Fanout); "
        f"the caller's role is {role}"
    }


def test_platform_admins_cannot_purchase_products_for_an_account_either(world: World) -> None:
    response = world.client.put(f"/v1/accounts/{OWN}/products/compute", headers=world.as_role("admin"))

    assert response.status_code == 403
    assert "the caller's role is admin" in response.json()["detail"]


def test_a_superuser_of_another_account_gets_404(world: World) -> None:
    response = world.client.put(f"/v1/accounts/{OWN}/products/compute", headers=world.as_role("superuser", OTHER))

    assert response.status_code == 404


def test_fanout_on_a_trial_account_is_refused_because_it_requires_a_paid_account(world: World) -> None:
    assert purchase(world, "compute", account=OTHER).status_code == 200

    response = purchase(world, "fanout", account=OTHER)

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Fanout requires a paid account; this account is a trial account (ask the platform to mark it paid)"
    }


def test_fanout_without_compute_is_refused(world: World) -> None:
    response = purchase(world, "fanout")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Fanout requires Compute: purchase Compute for the account first (Compute is billed separately)"
    }
    assert audit_entries(world, "product.purchase") == []


def test_an_unknown_product_is_refused_by_the_schema(world: World) -> None:
    assert purchase(world, "image_optimizer").status_code == 422


def test_compute_cannot_be_cancelled_while_fanout_is_purchased(world: World) -> None:
    purchase(world, "compute")
    purchase(world, "fanout")

    response = world.client.delete(f"/v1/accounts/{OWN}/products/compute", headers=world.as_role("superuser"))

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Compute is a prerequisite for Fanout: cancel Fanout before cancelling Compute"
    }


def test_cancelling_fanout_turns_it_off_on_every_service_and_audits_each_change(world: World) -> None:
    purchase(world, "compute")
    purchase(world, "fanout")
    engineer = world.as_role("engineer")
    service = world.client.post(
        f"/v1/accounts/{OWN}/services", json={"name": "live", "type": "compute"}, headers=engineer
    ).json()
    assert (
        world.client.put(f"/enabled-products/v1/fanout/services/{service['id']}", headers=engineer).status_code == 200
    )

    response = world.client.delete(f"/v1/accounts/{OWN}/products/fanout", headers=world.as_role("superuser"))

    assert response.status_code == 204
    assert world.client.get(f"/v1/services/{service['id']}", headers=engineer).json()["fanout_enabled"] is False
    [disabled] = audit_entries(world, "fanout.disable")
    assert disabled.after == {"fanout_enabled": False, "reason": "Fanout cancelled for the account"}
    [cancelled] = audit_entries(world, "product.cancel")
    assert (cancelled.before["enabled"], cancelled.after["enabled"]) == (True, False)
    products = world.client.get(f"/v1/accounts/{OWN}/products", headers=engineer).json()
    assert [p["enabled"] for p in products] == [True, False]


def test_cancelling_a_product_not_held_changes_nothing(world: World) -> None:
    response = world.client.delete(f"/v1/accounts/{OWN}/products/fanout", headers=world.as_role("superuser"))

    assert response.status_code == 204
    assert audit_entries(world, "product.cancel") == []
