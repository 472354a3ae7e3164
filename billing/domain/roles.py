"""Who may do what: DESIGN.md's role table as data, and the one function that reads it.

Each action lists, per role, whether the role may act on ``ALL`` accounts or only its
``OWN``. ``decide`` turns that into one of three answers:

- ``ALLOW``;
- ``HIDE`` (answer 404): an account user asking about *another* account, whether or not the
  role could act on its own, so the existence of other accounts never leaks;
- ``DENY`` (answer 403): the caller may see the account (its own, or a platform role) but
  this role may not take this action.

Publish and ingest tokens are not people: they may take none of these actions
(``DENY``), and an account-scoped one asking about another account is ``HIDE``.

Example: an ``engineer`` of ``acc_1`` reading usage of ``acc_1`` is ``ALLOW``, reading
statements of ``acc_1`` is ``DENY`` and reading usage of ``acc_2`` is ``HIDE``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

ADMIN, FINANCE, SUPERUSER, ENGINEER, BILLING, USER = "admin", "finance", "superuser", "engineer", "billing", "user"
PLATFORM_ROLES = frozenset({ADMIN, FINANCE})
ACCOUNT_ROLES = frozenset({SUPERUSER, ENGINEER, BILLING, USER})
ROLES = (ADMIN, FINANCE, SUPERUSER, ENGINEER, BILLING, USER)


class Scope(Enum):
    ALL = "all"
    OWN = "own"


class Verdict(Enum):
    ALLOW = "allow"
    DENY = "deny"
    HIDE = "hide"


class Action(Enum):
    """The rows of DESIGN.md's role table (plus reading an account's own record)."""

    MANAGE_ACCOUNTS = "create accounts, set paid/trial"
    SET_RATES = "set rate cards and contract rates"
    PURCHASE_PRODUCTS = "purchase/cancel Fanout for the account"
    MANAGE_SERVICES = "create services, backends; turn Fanout on/off for a service"
    READ_SERVICES = "read service configuration"
    READ_USAGE = "read usage"
    READ_STATEMENTS = "read statements, download them"
    MANAGE_STATEMENTS = "regenerate drafts, finalize, add adjustments/credits"
    MANAGE_PEOPLE = "manage the account's users and tokens"
    READ_AUDIT = "read the audit log"
    READ_ACCOUNT = "read the account record"
    # Not a row of DESIGN.md's table: usage alerts belong to whoever manages the account
    # (docs/decisions.md, "After finalization: usage alerts").
    MANAGE_ALERTS = "set and remove the account's usage alert thresholds"
    # Not rows of DESIGN.md's table either: its "After finalization" section gives an account's
    # webhook endpoints to its superuser and the platform-wide ones to admin and finance
    # (docs/decisions.md, "After finalization: webhooks").
    MANAGE_WEBHOOKS = "register and manage the account's webhook endpoints"
    MANAGE_PLATFORM_WEBHOOKS = "register and manage platform-wide webhook endpoints"


_ALL, _OWN = Scope.ALL, Scope.OWN

PERMISSIONS: dict[Action, dict[str, Scope]] = {
    Action.MANAGE_ACCOUNTS: {ADMIN: _ALL},
    Action.SET_RATES: {ADMIN: _ALL, FINANCE: _ALL},
    Action.PURCHASE_PRODUCTS: {SUPERUSER: _OWN},
    Action.MANAGE_SERVICES: {SUPERUSER: _OWN, ENGINEER: _OWN},
    Action.READ_SERVICES: {ADMIN: _ALL, SUPERUSER: _OWN, ENGINEER: _OWN, BILLING: _OWN, USER: _OWN},
    Action.READ_USAGE: {ADMIN: _ALL, FINANCE: _ALL, SUPERUSER: _OWN, ENGINEER: _OWN, BILLING: _OWN},
    Action.READ_STATEMENTS: {ADMIN: _ALL, FINANCE: _ALL, SUPERUSER: _OWN, BILLING: _OWN},
    Action.MANAGE_STATEMENTS: {FINANCE: _ALL},
    Action.MANAGE_PEOPLE: {ADMIN: _ALL, SUPERUSER: _OWN},
    Action.READ_AUDIT: {ADMIN: _ALL, FINANCE: _ALL, SUPERUSER: _OWN},
    Action.MANAGE_ALERTS: {ADMIN: _ALL, SUPERUSER: _OWN},
    Action.MANAGE_WEBHOOKS: {SUPERUSER: _OWN},
    Action.MANAGE_PLATFORM_WEBHOOKS: {ADMIN: _ALL, FINANCE: _ALL},
    Action.READ_ACCOUNT: {
        ADMIN: _ALL,
        FINANCE: _ALL,
        SUPERUSER: _OWN,
        ENGINEER: _OWN,
        BILLING: _OWN,
        USER: _OWN,
    },
}


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller behind a token: a person with a role, or a publish or ingest token.

    ``account_id`` is None for platform people and platform-wide ingest tokens.
    """

    token_id: str
    kind: str  # "user" | "publish" | "ingest"
    role: str | None = None
    account_id: str | None = None
    user_id: str | None = None
    service_id: str | None = None

    @property
    def actor(self) -> str:
        """The name the audit log records for this caller."""
        return self.user_id or self.token_id


def decide(principal: Principal, action: Action, account_id: str | None) -> Verdict:
    """Answer whether ``principal`` may take ``action`` on ``account_id`` (None: no account).

    Example: ``decide(finance, Action.MANAGE_STATEMENTS, "acc_9")`` is ``ALLOW``;
    ``decide(billing_of_acc_1, Action.MANAGE_STATEMENTS, "acc_1")`` is ``DENY``.
    """
    foreign = principal.account_id is not None and account_id is not None and account_id != principal.account_id
    if foreign:
        return Verdict.HIDE
    if principal.kind != "user" or principal.role is None:
        return Verdict.DENY
    scope = PERMISSIONS[action].get(principal.role)
    if scope is Scope.ALL:
        return Verdict.ALLOW
    if scope is Scope.OWN and account_id is not None and account_id == principal.account_id:
        return Verdict.ALLOW
    return Verdict.DENY
