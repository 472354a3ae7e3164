"""Accounts, people and tokens through the admin API, on the real database."""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.orm import ApiToken, AuditEntry
from tests.admin_world import OTHER, OWN, World
from tests.integration.admin_setup import served_world  # noqa: F401  (the world fixture)


def test_a_request_without_a_token_is_401_and_says_so(world: World) -> None:
    response = world.client.get(f"/v1/accounts/{OWN}")

    assert response.status_code == 401
    assert response.json() == {"detail": "missing bearer token"}
    assert response.headers["www-authenticate"] == "Bearer"


def test_an_unknown_token_is_401(world: World) -> None:
    response = world.client.get(f"/v1/accounts/{OWN}", headers={"Authorization": "Bearer fm_nope"})

    assert response.status_code == 401
    assert response.json() == {"detail": "invalid or revoked token"}


def test_the_admin_creates_an_account_and_the_change_is_audited(world: World) -> None:
    response = world.client.post(
        "/v1/accounts", json={"name": "Initech", "plan": "paid", "id": "initech"}, headers=world.as_role("admin")
    )

    assert response.status_code == 201
    assert response.json() == {"id": "initech", "name": "Initech", "plan": "paid", "currency": "USD", "products": []}
    with Session(world.engine) as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.target == "account/initech")).one()
    assert (entry.action, entry.actor, entry.before) == ("account.create", world.user_ids["admin"], None)
    assert entry.after == {"id": "initech", "name": "Initech", "plan": "paid", "currency": "USD"}


def test_creating_an_account_twice_is_a_conflict(world: World) -> None:
    response = world.client.post("/v1/accounts", json={"name": "again", "id": OWN}, headers=world.as_role("admin"))

    assert response.status_code == 409
    assert "already exists" in response.json()["detail"]


def test_an_unknown_field_is_refused_with_its_name(world: World) -> None:
    response = world.client.post("/v1/accounts", json={"name": "x", "colour": "red"}, headers=world.as_role("admin"))

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "colour"]


def test_the_admin_marks_an_account_paid_and_the_audit_log_keeps_before_and_after(world: World) -> None:
    response = world.client.put(f"/v1/accounts/{OTHER}/plan", json={"plan": "paid"}, headers=world.as_role("admin"))

    assert response.status_code == 200
    assert response.json()["plan"] == "paid"
    with Session(world.engine) as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "account.plan")).one()
    assert (entry.before["plan"], entry.after["plan"]) == ("trial", "paid")


def test_another_accounts_record_answers_404_exactly_like_a_missing_one(world: World) -> None:
    other = world.client.get(f"/v1/accounts/{OTHER}", headers=world.as_role("superuser"))
    missing = world.client.get("/v1/accounts/acc_missing", headers=world.as_role("superuser"))

    assert other.status_code == missing.status_code == 404
    assert other.json() == missing.json()


def test_account_users_list_only_their_own_account(world: World) -> None:
    response = world.client.get("/v1/accounts", headers=world.as_role("user"))

    assert [account["id"] for account in response.json()] == [OWN]


def test_a_superuser_adds_an_engineer_whose_new_token_works_and_is_stored_only_as_a_hash(world: World) -> None:
    created = world.client.post(
        f"/v1/accounts/{OWN}/users",
        json={"email": "eng2@own.test", "role": "engineer"},
        headers=world.as_role("superuser"),
    )
    assert created.status_code == 201
    user_id = created.json()["id"]

    issued = world.client.post(
        f"/v1/users/{user_id}/tokens", json={"name": "laptop"}, headers=world.as_role("superuser")
    )

    assert issued.status_code == 201
    secret = issued.json()["token"]
    assert world.client.get(f"/v1/accounts/{OWN}", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    with Session(world.engine) as session:
        stored = session.get(ApiToken, issued.json()["id"])
        assert stored is not None
        assert stored.token_hash == hashlib.sha256(secret.encode()).hexdigest()
        assert secret not in {stored.token_hash, stored.prefix, stored.name}
    listed = world.client.get(f"/v1/accounts/{OWN}/tokens", headers=world.as_role("superuser")).json()
    assert all("token" not in token for token in listed)


def test_a_superuser_cannot_give_an_account_user_a_platform_role(world: World) -> None:
    response = world.client.post(
        f"/v1/accounts/{OWN}/users", json={"email": "x@own.test", "role": "finance"}, headers=world.as_role("superuser")
    )

    assert response.status_code == 400
    assert "platform role" in response.json()["detail"]


def test_a_revoked_token_stops_working_at_once(world: World) -> None:
    headers = world.as_role("engineer")
    me = world.client.get(f"/v1/accounts/{OWN}/tokens", headers=world.as_role("superuser")).json()
    engineer_token = next(t for t in me if t["user_id"] == world.user_ids["engineer"])

    revoked = world.client.delete(f"/v1/tokens/{engineer_token['id']}", headers=world.as_role("superuser"))

    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert world.client.get(f"/v1/accounts/{OWN}", headers=headers).status_code == 401


def test_removing_a_user_revokes_their_tokens(world: World) -> None:
    headers = world.as_role("billing")

    removed = world.client.delete(f"/v1/users/{world.user_ids['billing']}", headers=world.as_role("superuser"))

    assert removed.status_code == 204
    assert world.client.get(f"/v1/accounts/{OWN}", headers=headers).status_code == 401


def test_healthz_answers_without_a_token(world: World) -> None:
    assert world.client.get("/healthz").json() == {"status": "ok", "database": "ok"}


def test_a_nul_character_anywhere_is_refused_before_it_reaches_the_database(world: World) -> None:
    headers = world.as_role("superuser")

    in_body = world.client.post(f"/v1/accounts/{OWN}/users", json={"email": "\x00@x", "role": "user"}, headers=headers)
    in_path = world.client.get("/v1/accounts/acc%00own", headers=headers)
    in_query = world.client.get(f"/v1/accounts/{OWN}/usage?month=%00", headers=world.as_role("admin"))

    assert in_body.status_code == 422 and "NUL" in in_body.json()["detail"][0]["msg"]
    assert (in_path.status_code, in_query.status_code) == (400, 400)
    assert in_path.json() == {"detail": "the path or query contains a NUL character"}
