"""The role table of DESIGN.md, read by ``decide``."""

from __future__ import annotations

import pytest

from billing.domain.roles import ACCOUNT_ROLES, PERMISSIONS, ROLES, Action, Principal, Scope, Verdict, decide


def person(role: str, account_id: str | None = "acc_1") -> Principal:
    return Principal(
        "tok", "user", role=role, account_id=None if role in ("admin", "finance") else account_id, user_id="u"
    )


def test_an_engineer_reads_own_usage_but_not_statements_and_never_sees_another_account() -> None:
    engineer = person("engineer")

    assert decide(engineer, Action.READ_USAGE, "acc_1") is Verdict.ALLOW
    assert decide(engineer, Action.READ_STATEMENTS, "acc_1") is Verdict.DENY
    assert decide(engineer, Action.READ_USAGE, "acc_2") is Verdict.HIDE


def test_only_finance_regenerates_and_finalizes_statements() -> None:
    allowed = {role for role in ROLES if decide(person(role), Action.MANAGE_STATEMENTS, "acc_1") is Verdict.ALLOW}

    assert allowed == {"finance"}


def test_platform_roles_act_on_every_account_where_the_table_says_all() -> None:
    assert decide(person("admin"), Action.READ_USAGE, "acc_9") is Verdict.ALLOW
    assert decide(person("finance"), Action.READ_SERVICES, "acc_9") is Verdict.DENY


def test_account_roles_may_not_take_account_less_actions() -> None:
    assert decide(person("superuser"), Action.MANAGE_ACCOUNTS, None) is Verdict.DENY
    assert decide(person("admin"), Action.MANAGE_ACCOUNTS, None) is Verdict.ALLOW


@pytest.mark.parametrize("kind", ["publish", "ingest"])
def test_publish_and_ingest_tokens_take_no_admin_action(kind: str) -> None:
    token = Principal("tok", kind, account_id="acc_1", service_id="svc")

    assert {decide(token, action, "acc_1") for action in Action} == {Verdict.DENY}
    assert decide(token, Action.READ_USAGE, "acc_2") is Verdict.HIDE


def test_account_roles_only_ever_hold_own_scope_and_platform_roles_all() -> None:
    for grants in PERMISSIONS.values():
        for role, scope in grants.items():
            assert scope is (Scope.OWN if role in ACCOUNT_ROLES else Scope.ALL)


def test_the_audit_actor_is_the_person_or_else_the_token() -> None:
    assert person("user").actor == "u"
    assert Principal("tok_1", "ingest").actor == "tok_1"
