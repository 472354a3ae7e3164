"""Finding 14: a platform object (an admin's token or person) answers an account's people exactly like an
unknown id, 404 with the same body, on every route that fetches people and tokens by id."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.orm import ApiToken
from tests.admin_world import OTHER, World
from tests.integration.admin_setup import served_world  # noqa: F401  (the world fixture)


def _admin_token_id(world: World) -> str:
    with Session(world.engine) as session:
        token_id = session.scalars(select(ApiToken.id).where(ApiToken.user_id == world.user_ids["admin"])).one()
    return token_id


def _other_accounts_token_id(world: World) -> str:
    with Session(world.engine) as session:
        token_id = session.scalars(select(ApiToken.id).where(ApiToken.account_id == OTHER)).first()
    assert token_id is not None
    return token_id


@pytest.mark.parametrize("role", ["superuser", "engineer", "billing", "user"])
def test_an_admins_token_and_person_answer_404_like_unknown_ones(world: World, role: str) -> None:
    headers = world.as_role(role)
    admin_token, admin_user = _admin_token_id(world), world.user_ids["admin"]
    calls = [
        ("DELETE", "/v1/tokens/{}", admin_token, "tok_nonexistent", "no token {!r}"),
        ("DELETE", "/v1/users/{}", admin_user, "usr_nonexistent", "no user {!r}"),
        ("POST", "/v1/users/{}/tokens", admin_user, "usr_nonexistent", "no user {!r}"),
    ]
    for method, path, existing, unknown, detail in calls:
        answers = [
            world.client.request(method, path.format(target), json={"name": "t"}, headers=headers)
            for target in (existing, unknown)
        ]
        assert [a.status_code for a in answers] == [404, 404], (method, path)
        assert [a.json() for a in answers] == [{"detail": detail.format(t)} for t in (existing, unknown)]


def test_another_accounts_token_is_404_too_and_the_admins_token_still_works(world: World) -> None:
    response = world.client.delete(f"/v1/tokens/{_other_accounts_token_id(world)}", headers=world.as_role("superuser"))

    assert response.status_code == 404
    assert world.client.get("/v1/accounts", headers=world.as_role("admin")).status_code == 200  # not revoked


def test_platform_people_keep_their_403_for_what_their_role_may_not_do(world: World) -> None:
    response = world.client.delete(f"/v1/tokens/{_admin_token_id(world)}", headers=world.as_role("finance"))

    assert response.status_code == 403
