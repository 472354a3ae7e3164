"""Services, backends, publish tokens and Fanout per service through the admin API, with real TLS origins."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from billing.access import principal_for
from billing.orm import AuditEntry, Backend
from billing.settings import BillingSettings
from tests.admin_world import OTHER, OWN, World, build_world
from tests.integration.admin_setup import add_backend, new_service
from tests.tls_origin import ca_signed, closed_port, self_signed, serving

FANOUT = "/enabled-products/v1/fanout/services"

# The test origins listen on 127.0.0.1: loopback backends are refused unless the operator allows them.
TEST_ORIGINS = "127.0.0.0/8"


@pytest.fixture
def world(engine: Engine) -> Iterator[World]:
    world = build_world(
        engine, settings=BillingSettings(tls_check_timeout_seconds=2, backend_allowed_networks=TEST_ORIGINS)
    )
    with world.client:
        yield world


def buy_fanout(world: World) -> None:
    for product in ("compute", "fanout"):
        response = world.client.put(f"/v1/accounts/{OWN}/products/{product}", headers=world.as_role("superuser"))
        assert response.status_code == 200


def enable(world: World, service_id: str, role: str = "engineer", account: str = OWN):
    return world.client.put(f"{FANOUT}/{service_id}", headers=world.as_role(role, account))


def fanout_service(world: World) -> str:
    buy_fanout(world)
    service_id = new_service(world)
    assert enable(world, service_id).status_code == 200
    return service_id


def audit_entries(world: World, action: str) -> list[AuditEntry]:
    with Session(world.engine) as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


# --- services ----------------------------------------------------------------------------------


def test_an_engineer_creates_a_compute_service_with_fanout_off_and_it_is_audited(world: World) -> None:
    response = world.client.post(
        f"/v1/accounts/{OWN}/services", json={"name": "chat", "type": "compute"}, headers=world.as_role("engineer")
    )

    assert response.status_code == 201
    body = response.json()
    assert body == {
        "id": body["id"],
        "account_id": OWN,
        "name": "chat",
        "type": "compute",
        "fanout_enabled": False,
        "directors": False,
        "shielding": False,
        "ngwaf": False,
        "cross_origin": False,
    }
    [entry] = audit_entries(world, "service.create")
    assert (entry.actor, entry.target, entry.after) == (world.user_ids["engineer"], f"service/{body['id']}", body)


def test_every_account_role_reads_services_but_only_superuser_and_engineer_create_them(world: World) -> None:
    service_id = new_service(world)
    body = {"name": "x", "type": "compute"}

    for role in ("superuser", "engineer", "billing", "user"):
        listed = world.client.get(f"/v1/accounts/{OWN}/services", headers=world.as_role(role))
        assert [s["id"] for s in listed.json()] == [service_id]
    for role, expected in (("superuser", 201), ("billing", 403), ("user", 403), ("admin", 403), ("finance", 403)):
        created = world.client.post(f"/v1/accounts/{OWN}/services", json=body, headers=world.as_role(role))
        assert created.status_code == expected, role


def test_another_accounts_service_answers_404_exactly_like_a_missing_one(world: World) -> None:
    service_id = new_service(world)
    stranger = world.as_role("engineer", OTHER)

    other = world.client.get(f"/v1/services/{service_id}", headers=stranger)
    missing = world.client.get("/v1/services/svc_missing", headers=stranger)

    assert other.status_code == missing.status_code == 404
    assert other.json()["detail"] == f"no service {service_id!r}"
    assert missing.json()["detail"] == "no service 'svc_missing'"
    assert enable(world, service_id, account=OTHER).status_code == 404
    assert add_backend(world, service_id).status_code == 201  # the owner still can
    foreign_backend = world.client.post(
        f"/v1/services/{service_id}/backends", json={"name": "x", "address": "x.example"}, headers=stranger
    )
    assert foreign_backend.status_code == 404


def test_setting_service_flags_is_audited_with_before_and_after(world: World) -> None:
    service_id = new_service(world)

    response = world.client.patch(
        f"/v1/services/{service_id}", json={"shielding": True}, headers=world.as_role("engineer")
    )

    assert response.status_code == 200
    assert response.json()["shielding"] is True
    [entry] = audit_entries(world, "service.update")
    assert (entry.before["shielding"], entry.after["shielding"]) == (False, True)


def test_an_engineer_turns_automatic_cors_on_for_a_fanout_service_and_it_is_audited(world: World) -> None:
    service_id = new_service(world)

    response = world.client.patch(
        f"/v1/services/{service_id}", json={"cross_origin": True}, headers=world.as_role("engineer")
    )

    assert (response.status_code, response.json()["cross_origin"]) == (200, True)
    assert world.client.get(f"/v1/services/{service_id}", headers=world.as_role("user")).json()["cross_origin"]
    [entry] = audit_entries(world, "service.update")
    assert (entry.before["cross_origin"], entry.after["cross_origin"]) == (False, True)
    refused = world.client.patch(
        f"/v1/services/{service_id}", json={"cross_origin": True}, headers=world.as_role("billing")
    )
    assert refused.status_code == 403


def test_a_service_type_cannot_be_changed(world: World) -> None:
    service_id = new_service(world)

    response = world.client.patch(
        f"/v1/services/{service_id}", json={"type": "delivery"}, headers=world.as_role("engineer")
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "type"]


@pytest.mark.parametrize(
    ("flag", "label"), [("directors", "backend directors"), ("shielding", "shielding"), ("ngwaf", "the Next-Gen WAF")]
)
def test_adding_directors_shielding_or_the_next_gen_waf_to_a_fanout_service_is_refused(
    world: World, flag: str, label: str
) -> None:
    service_id = fanout_service(world)

    response = world.client.patch(f"/v1/services/{service_id}", json={flag: True}, headers=world.as_role("engineer"))

    assert response.status_code == 400
    assert response.json() == {
        "detail": f"service {service_id} has Fanout enabled, and Fanout is not compatible with {label}: "
        "turn Fanout off for the service first"
    }
    assert world.client.get(f"/v1/services/{service_id}", headers=world.as_role("user")).json()[flag] is False


# --- backends ----------------------------------------------------------------------------------


def test_a_non_fanout_service_keeps_every_other_fastly_backend_setting(world: World) -> None:
    service_id = new_service(world)

    response = add_backend(
        world, service_id, port=8080, connect_timeout=1000, shield="iad-va-us", override_host="o.test"
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["port"], body["use_tls"], body["override_host"]) == (8080, False, "o.test")
    assert body["settings"] == {"connect_timeout": 1000, "shield": "iad-va-us"}
    assert body["tls_status"] == "not_applicable"
    listed = world.client.get(f"/v1/services/{service_id}/backends", headers=world.as_role("user")).json()
    assert listed == [body]


def test_a_fanout_service_refuses_a_backend_setting_beyond_the_four_naming_it(world: World) -> None:
    service_id = fanout_service(world)

    response = add_backend(world, service_id, first_byte_timeout=15000)

    assert response.status_code == 400
    assert response.json() == {
        "detail": "backend 'origin' sets first_byte_timeout: Fanout services support only the name, address, "
        "use_tls, override_host backend settings"
    }


def test_a_fanout_service_accepts_a_backend_with_the_four_settings_and_a_port(world: World) -> None:
    service_id = fanout_service(world)

    response = add_backend(world, service_id, port=8080, override_host="app.example")

    assert response.status_code == 201
    assert response.json()["settings"] == {}


def test_an_unknown_backend_field_is_refused_with_its_name(world: World) -> None:
    response = add_backend(world, new_service(world), colour="red")

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "colour"]


def test_two_backends_with_one_name_are_a_conflict(world: World) -> None:
    service_id = new_service(world)
    add_backend(world, service_id)

    response = add_backend(world, service_id)

    assert response.status_code == 409
    assert response.json() == {"detail": f"service {service_id} already has a backend named 'origin'"}


# --- TLS of backends ---------------------------------------------------------------------------


def self_signed_refusal(port: int) -> str:
    return (
        f"backend 'origin' at 127.0.0.1:{port} presents a TLS certificate that does not verify against the public "
        "CA bundle (self-signed certificate); Fanout does not support self-signed certificates: use a certificate "
        "signed by a public certification authority"
    )


def test_a_self_signed_tls_backend_is_refused_on_a_fanout_service(world: World, tmp_path: Path) -> None:
    service_id = fanout_service(world)

    with serving(self_signed(tmp_path)) as origin:
        response = add_backend(world, service_id, address="127.0.0.1", port=origin.port, use_tls=True)

    assert response.status_code == 400
    assert response.json() == {"detail": self_signed_refusal(origin.port)}
    assert origin.connections == 1
    with Session(world.engine) as session:
        assert session.scalars(select(Backend)).all() == []


def test_fanout_is_refused_for_a_service_whose_tls_backend_is_self_signed(world: World, tmp_path: Path) -> None:
    buy_fanout(world)
    service_id = new_service(world)

    with serving(self_signed(tmp_path)) as origin:
        added = add_backend(world, service_id, address="127.0.0.1", port=origin.port, use_tls=True)
        response = enable(world, service_id)

    assert added.status_code == 201
    assert added.json()["tls_status"] == "untrusted"
    assert response.status_code == 400
    assert response.json() == {"detail": self_signed_refusal(origin.port)}
    assert origin.connections == 2  # checked when added, and again when Fanout was asked for


def test_an_unreachable_tls_backend_is_recorded_unverified_and_fanout_is_still_allowed(world: World) -> None:
    buy_fanout(world)
    service_id = new_service(world)
    port = closed_port()

    added = add_backend(world, service_id, address="127.0.0.1", port=port, use_tls=True)
    enabled = enable(world, service_id)
    second = world.client.post(
        f"/v1/services/{service_id}/backends",
        json={"name": "second", "address": "127.0.0.1", "port": port, "use_tls": True},
        headers=world.as_role("engineer"),
    )

    assert (added.status_code, added.json()["tls_status"]) == (201, "unverified")
    assert enabled.status_code == 200
    assert (second.status_code, second.json()["tls_status"]) == (201, "unverified")


def test_a_tls_backend_whose_certificate_chains_to_a_trusted_ca_is_verified(engine: Engine, tmp_path: Path) -> None:
    ca, leaf = ca_signed(tmp_path)
    world = build_world(engine, settings=BillingSettings(tls_ca_file=str(ca), backend_allowed_networks=TEST_ORIGINS))
    with world.client, serving(leaf) as origin:
        buy_fanout(world)
        service_id = new_service(world)
        added = add_backend(world, service_id, address="127.0.0.1", port=origin.port, use_tls=True)
        enabled = enable(world, service_id)

    assert added.json()["tls_status"] == "verified"
    assert enabled.status_code == 200


def test_the_certificate_must_name_the_override_host_when_one_is_set(engine: Engine, tmp_path: Path) -> None:
    ca, leaf = ca_signed(tmp_path)  # the certificate names 127.0.0.1 only
    world = build_world(engine, settings=BillingSettings(tls_ca_file=str(ca), backend_allowed_networks=TEST_ORIGINS))
    with world.client, serving(leaf) as origin:
        service_id = new_service(world)
        response = add_backend(
            world, service_id, address="127.0.0.1", port=origin.port, use_tls=True, override_host="app.example"
        )

    assert response.status_code == 201
    assert response.json()["tls_status"] == "untrusted"


# --- Fanout per service ------------------------------------------------------------------------


def test_an_engineer_turns_fanout_on_and_off_with_fastlys_enabled_products_shapes(world: World) -> None:
    buy_fanout(world)
    service_id = new_service(world)
    shape = {
        "product": {"id": "fanout", "object": "product"},
        "service": {"id": service_id, "object": "service"},
        "_links": {"self": f"{FANOUT}/{service_id}"},
    }

    enabled = enable(world, service_id)
    read = world.client.get(f"{FANOUT}/{service_id}", headers=world.as_role("user"))
    listed = world.client.get(FANOUT, headers=world.as_role("billing"))
    disabled = world.client.delete(f"{FANOUT}/{service_id}", headers=world.as_role("engineer"))
    after = world.client.get(f"{FANOUT}/{service_id}", headers=world.as_role("user"))

    assert (enabled.status_code, enabled.json()) == (200, shape)
    assert (read.status_code, read.json()) == (200, shape)
    assert listed.json() == {
        "product": {"id": "fanout", "object": "product"},
        "customer": {"id": OWN, "object": "customer"},
        "services": [service_id],
        "_links": {"self": FANOUT},
    }
    assert (disabled.status_code, disabled.content) == (204, b"")
    assert (after.status_code, after.json()) == (400, {"detail": f"Fanout is not enabled on service {service_id}"})
    assert [(e.before, e.after) for e in audit_entries(world, "fanout.enable")] == [
        ({"fanout_enabled": False}, {"fanout_enabled": True})
    ]
    assert [(e.before, e.after) for e in audit_entries(world, "fanout.disable")] == [
        ({"fanout_enabled": True}, {"fanout_enabled": False})
    ]


def test_turning_fanout_on_twice_is_audited_once(world: World) -> None:
    service_id = fanout_service(world)

    assert enable(world, service_id).status_code == 200
    assert len(audit_entries(world, "fanout.enable")) == 1


def test_fanout_is_refused_for_a_service_when_the_account_has_not_purchased_it(world: World) -> None:
    service_id = new_service(world)

    response = enable(world, service_id)

    assert response.status_code == 400
    assert response.json() == {
        "detail": f"Fanout has not been purchased for account {OWN}: an account superuser must purchase it first "
        f"(PUT /v1/accounts/{OWN}/products/fanout)"
    }


def test_fanout_is_refused_for_a_delivery_service_and_the_message_suggests_service_chaining(world: World) -> None:
    buy_fanout(world)
    service_id = new_service(world, "delivery")

    response = enable(world, service_id)

    assert response.status_code == 400
    assert response.json() == {
        "detail": f"Fanout is only available for Compute services, and {service_id} is a Delivery service; "
        "use service chaining instead: put a Compute service with Fanout enabled in front of it"
    }


@pytest.mark.parametrize(
    ("flag", "label"), [("directors", "backend directors"), ("shielding", "shielding"), ("ngwaf", "the Next-Gen WAF")]
)
def test_fanout_is_refused_for_a_service_with_directors_shielding_or_the_next_gen_waf(
    world: World, flag: str, label: str
) -> None:
    buy_fanout(world)
    service_id = new_service(world, **{flag: True})

    response = enable(world, service_id)

    assert response.status_code == 400
    assert response.json() == {
        "detail": f"Fanout is not compatible with {label}, which service {service_id} uses; turn it off first"
    }


def test_fanout_is_refused_for_a_service_whose_backend_has_settings_beyond_the_four(world: World) -> None:
    buy_fanout(world)
    service_id = new_service(world)
    add_backend(world, service_id, max_conn=50, comment="legacy")

    response = enable(world, service_id)

    assert response.status_code == 400
    assert response.json() == {
        "detail": "backend 'origin' sets comment, max_conn: Fanout services support only the name, address, "
        "use_tls, override_host backend settings"
    }


@pytest.mark.parametrize("role", ["billing", "user", "admin"])
def test_roles_that_do_not_manage_services_cannot_turn_fanout_on(world: World, role: str) -> None:
    buy_fanout(world)
    service_id = new_service(world)

    response = enable(world, service_id, role=role)

    assert response.status_code == 403
    assert (
        world.client.get(f"/v1/services/{service_id}", headers=world.as_role("user")).json()["fanout_enabled"] is False
    )


def test_a_platform_user_lists_an_accounts_fanout_services_by_naming_the_account(world: World) -> None:
    service_id = fanout_service(world)

    without = world.client.get(FANOUT, headers=world.as_role("admin"))
    named = world.client.get(FANOUT, params={"account_id": OWN}, headers=world.as_role("admin"))

    assert without.status_code == 400
    assert named.json()["services"] == [service_id]


# --- publish tokens ----------------------------------------------------------------------------


def test_an_engineer_issues_a_publish_token_that_speaks_only_for_its_service(world: World) -> None:
    service_id = fanout_service(world)

    issued = world.client.post(
        f"/v1/services/{service_id}/publish-tokens", json={"name": "backend"}, headers=world.as_role("engineer")
    )

    assert issued.status_code == 201
    secret = issued.json()["token"]
    with Session(world.engine) as session:
        principal = principal_for(session, secret)
    assert principal is not None
    assert (principal.kind, principal.service_id, principal.account_id) == ("publish", service_id, OWN)
    listed = world.client.get(f"/v1/services/{service_id}/publish-tokens", headers=world.as_role("superuser")).json()
    assert [t["id"] for t in listed] == [issued.json()["id"]]
    assert all("token" not in t for t in listed)
    assert [e.target for e in audit_entries(world, "token.create")][-1] == f"token/{issued.json()['id']}"


def test_a_publish_token_cannot_manage_anything_in_the_admin_api(world: World) -> None:
    service_id = fanout_service(world)
    secret = world.client.post(
        f"/v1/services/{service_id}/publish-tokens", json={}, headers=world.as_role("engineer")
    ).json()["token"]

    response = world.client.post(
        f"/v1/services/{service_id}/publish-tokens", json={}, headers={"Authorization": f"Bearer {secret}"}
    )

    assert response.status_code == 403


def test_a_revoked_publish_token_no_longer_names_a_principal(world: World) -> None:
    service_id = new_service(world)
    issued = world.client.post(f"/v1/services/{service_id}/publish-tokens", json={}, headers=world.as_role("engineer"))
    token_id, secret = issued.json()["id"], issued.json()["token"]

    revoked = world.client.delete(
        f"/v1/services/{service_id}/publish-tokens/{token_id}", headers=world.as_role("engineer")
    )
    wrong_service = world.client.delete(
        f"/v1/services/{new_service(world)}/publish-tokens/{token_id}", headers=world.as_role("engineer")
    )

    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert wrong_service.status_code == 404
    with Session(world.engine) as session:
        assert principal_for(session, secret) is None


def test_users_and_billing_cannot_issue_publish_tokens(world: World) -> None:
    service_id = new_service(world)

    for role in ("user", "billing"):
        response = world.client.post(f"/v1/services/{service_id}/publish-tokens", json={}, headers=world.as_role(role))
        assert response.status_code == 403
