"""Webhook endpoints: register one (its secret shown once), read, enable or disable, and its delivery log.

An account's endpoints are its superuser's; platform-wide ones (every account's events and the
platform's own) are admin's and finance's (``Action.MANAGE_WEBHOOKS``,
``Action.MANAGE_PLATFORM_WEBHOOKS``). Every change is audited. The URL is judged by the rule
against SSRF that backends follow (``kernel.network_policy``), here and again at each delivery.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import audit, backend_address
from billing.access import new_id, require, require_on
from billing.accounts import get_account
from billing.domain import webhook_delivery as rules
from billing.domain.exceptions import NotFound, RuleViolation
from billing.domain.roles import Action, Principal
from billing.webhooks.events import EVENT_TYPES
from billing.webhooks.orm import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from kernel.network_policy import AllowedNetworks, host_refusal

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24  # Standard Webhooks: between 24 and 64 bytes of randomness
MAX_URL_LENGTH = 2000
DNS_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class UrlPolicy:
    """Which addresses a webhook URL may reach (``FANMETER_BACKEND_ALLOWED_NETWORKS``) and the DNS wait."""

    allowed_networks: AllowedNetworks = ()
    dns_timeout_seconds: float = DNS_TIMEOUT_SECONDS


@dataclass(frozen=True)
class IssuedEndpoint:
    """An endpoint just registered: ``secret`` is shown this once; deliveries are signed with it."""

    row: WebhookEndpoint
    secret: str


def new_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` and 24 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def url_refusal(url: str, policy: UrlPolicy) -> str | None:
    """Why ``url`` may not receive webhooks (or None): http(s), a host, no credentials, a public address.

    A host name that does not resolve now is accepted, as a backend's is; every delivery resolves
    and judges it again, and connects only to the address it judged.
    """
    if len(url) > MAX_URL_LENGTH:
        return f"the URL is longer than {MAX_URL_LENGTH} characters"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "the URL must start with https:// (or http://)"
    if parts.username is not None or parts.password is not None:
        return "the URL may not carry a user name or password"
    if parts.fragment:
        return "the URL may not carry a #fragment"
    host = parts.hostname or ""
    refusal = host_refusal(host)
    if refusal is not None:
        return refusal
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return "the URL's port is not a number from 0 to 65535"
    reason, _ = judge_address(host, port, policy)
    return reason


def judge_address(host: str, port: int, policy: UrlPolicy) -> tuple[str | None, list[str]]:
    """Resolve ``host`` (with a timeout) and judge every address: why it is refused (or None), and the addresses."""
    reason, addresses = backend_address.judge(host, port, policy.allowed_networks, policy.dns_timeout_seconds)
    # The rule is the backends' one; its words name backends, this refusal is about a webhook URL.
    return (None if reason is None else reason.replace("backends must", "webhook URLs must")), addresses


def _event_types(wanted: list[str]) -> list[str]:
    unknown = sorted(set(wanted) - set(EVENT_TYPES))
    if unknown:
        raise RuleViolation(f"event_types: unknown {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}")
    if not wanted:
        raise RuleViolation("event_types: name at least one event type")
    return [event_type for event_type in EVENT_TYPES if event_type in wanted]


def _require_manage(principal: Principal, account_id: str | None) -> None:
    if account_id is None:
        require(principal, Action.MANAGE_PLATFORM_WEBHOOKS, None)
    else:
        require(principal, Action.MANAGE_WEBHOOKS, account_id)


def register(
    session: Session,
    principal: Principal,
    account_id: str | None,
    url: str,
    event_types: list[str],
    description: str,
    policy: UrlPolicy,
    now: datetime,
) -> IssuedEndpoint:
    """Register an endpoint of ``account_id`` (None: platform-wide); its secret is returned this once."""
    _require_manage(principal, account_id)
    if account_id is not None:
        get_account(session, account_id)
    refusal = url_refusal(url, policy)
    if refusal is not None:
        raise RuleViolation(f"url: {refusal}")
    secret = new_secret()
    row = WebhookEndpoint(
        id=new_id("whe"),
        account_id=account_id,
        url=url,
        event_types=_event_types(event_types),
        description=description,
        secret=secret,
        created_at=now,
        created_by=principal.actor,
    )
    session.add(row)
    _audit(session, principal.actor, row, "webhook.endpoint.create", None, endpoint_json(row), now)
    session.commit()
    return IssuedEndpoint(row, secret)


def endpoint_json(row: WebhookEndpoint) -> dict[str, Any]:
    """What anyone who may manage the endpoint sees of it: everything but the secret."""
    return {
        "id": row.id,
        "account_id": row.account_id,
        "url": row.url,
        "event_types": list(row.event_types),
        "description": row.description,
        "enabled": row.disabled_at is None,
        "disabled_reason": row.disabled_reason,
        "created_at": row.created_at,
        "created_by": row.created_by,
    }


def list_endpoints(session: Session, principal: Principal, account_id: str | None) -> list[WebhookEndpoint]:
    """An account's endpoints (None: the platform-wide ones), oldest first."""
    _require_manage(principal, account_id)
    if account_id is not None:
        get_account(session, account_id)
    owner = WebhookEndpoint.account_id.is_(None) if account_id is None else WebhookEndpoint.account_id == account_id
    return list(session.scalars(select(WebhookEndpoint).where(owner).order_by(WebhookEndpoint.created_at)))


def get_endpoint(session: Session, principal: Principal, endpoint_id: str) -> WebhookEndpoint:
    """One endpoint the caller may manage; another account's (or the platform's, to an account) is 404."""
    missing = f"no webhook endpoint {endpoint_id}"
    row = session.get(WebhookEndpoint, endpoint_id)
    if row is None:
        raise NotFound(missing)
    action = Action.MANAGE_PLATFORM_WEBHOOKS if row.account_id is None else Action.MANAGE_WEBHOOKS
    require_on(principal, action, row.account_id, missing)
    return row


def set_enabled(session: Session, principal: Principal, row: WebhookEndpoint, enabled: bool, now: datetime) -> None:
    """Enable or disable an endpoint; enabling sends what waited for it, oldest first."""
    if (row.disabled_at is None) == enabled:
        return
    before = endpoint_json(row)
    row.disabled_at, row.disabled_reason = (None, None) if enabled else (now, f"disabled by {principal.actor}")
    action = "webhook.endpoint.enable" if enabled else "webhook.endpoint.disable"
    _audit(session, principal.actor, row, action, before, endpoint_json(row), now)
    session.commit()


def _audit(
    session: Session,
    actor: str,
    row: WebhookEndpoint,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    now: datetime,
) -> None:
    audit.record(
        session,
        actor=actor,
        account_id=row.account_id,
        action=action,
        target=f"webhook-endpoint/{row.id}",
        before=_auditable(before),
        after=_auditable(after),
        now=now,
    )


def _auditable(view: dict[str, Any] | None) -> dict[str, Any] | None:
    """The audit log's JSON column wants plain values: instants as RFC 3339 text."""
    if view is None:
        return None
    return {key: value.isoformat() if isinstance(value, datetime) else value for key, value in view.items()}


@dataclass(frozen=True)
class LogEntry:
    """One line of an endpoint's delivery log: an event's delivery and its attempts, newest first."""

    delivery_id: int
    event_id: str
    event_type: str
    event_created_at: datetime
    status: str
    attempts: int
    last_attempt_at: datetime | None
    last_response_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def delivery_log(session: Session, row: WebhookEndpoint, limit: int = 100) -> list[LogEntry]:
    """The endpoint's newest deliveries (newest event first) with their last attempt's outcome."""
    query = (
        select(WebhookDelivery, WebhookEvent.id, WebhookEvent.type, WebhookEvent.created_at)
        .join(WebhookEvent, WebhookEvent.seq == WebhookDelivery.event_seq)
        .where(WebhookDelivery.endpoint_id == row.id)
        .order_by(WebhookDelivery.event_seq.desc())
        .limit(limit)
    )
    found = session.execute(query).all()
    errors = _last_errors(session, [delivery.id for delivery, *_ in found])
    return [
        LogEntry(
            delivery.id,
            event_id,
            event_type,
            created_at,
            delivery.status,
            delivery.attempts,
            delivery.last_attempt_at,
            delivery.last_response_code,
            errors.get(delivery.id),
            delivery.next_attempt_at if delivery.status == rules.PENDING else None,
            delivery.delivered_at,
        )
        for delivery, event_id, event_type, created_at in found
    ]


def _last_errors(session: Session, delivery_ids: list[int]) -> dict[int, str | None]:
    if not delivery_ids:
        return {}
    query = (
        select(WebhookAttempt.delivery_id, WebhookAttempt.error)
        .where(WebhookAttempt.delivery_id.in_(delivery_ids))
        .order_by(WebhookAttempt.id)
    )
    last: dict[int, str | None] = {}
    for delivery_id, error in session.execute(query):
        last[delivery_id] = error  # attempts come oldest first: the last one of each stays
    return last


def redeliver(session: Session, principal: Principal, row: WebhookEndpoint, delivery_id: int, now: datetime) -> None:
    """Send one event again at once, in a new series of retries (audited); later events still wait behind it."""
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.endpoint_id != row.id:
        raise NotFound(f"no delivery {delivery_id} of webhook endpoint {row.id}")
    before = {"status": delivery.status, "attempts": delivery.attempts}
    state = rules.redelivered(rules.DeliveryState(delivery.status, delivery.attempts, delivery.failures), now)
    delivery.status, delivery.failures, delivery.next_attempt_at = state.status, state.failures, state.next_attempt_at
    delivery.failing_since, delivery.delivered_at = state.failing_since, state.delivered_at
    after = {"status": delivery.status, "attempts": delivery.attempts}
    audit.record(
        session,
        actor=principal.actor,
        account_id=row.account_id,
        action="webhook.delivery.redeliver",
        target=f"webhook-endpoint/{row.id}/deliveries/{delivery_id}",
        before=before,
        after=after,
        now=now,
    )
    session.commit()
