"""Services, their backends and publish tokens, and Fanout turned on or off per service.

Every rule comes from ``billing.domain.fanout_rules``; this module gathers the facts, runs the
TLS check of ``billing.tls_check`` where a certificate matters, raises the rule's reason, and
audits every change of entitlement or configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing import audit, backend_address
from billing.access import IssuedToken, new_id, require
from billing.accounts import issue_audited, products_of
from billing.domain import fanout_rules
from billing.domain.exceptions import Conflict, NotFound, RuleViolation
from billing.domain.fanout_rules import BackendFacts, ServiceFacts
from billing.domain.roles import Action, Principal, Verdict, decide
from billing.orm import ApiToken, Backend, Service
from billing.tls_check import DEFAULT_TLS_PORT, TlsCheck, check_tls
from billing.webhooks import events as webhook_events
from billing.webhooks import outbox, payloads
from kernel.network_policy import IPNetwork

FLAGS = ("directors", "shielding", "ngwaf")
PORT = "port"  # kept in ``Backend.settings``; part of the address, not an extra setting


@dataclass(frozen=True, slots=True)
class TlsPolicy:
    """How the admin service reaches a backend at configuration time: which addresses it may
    (``kernel.network_policy``, with the operator's allowed networks), and the TLS check's
    timeout and CA bundle (None: public)."""

    timeout_seconds: float
    ca_file: str | None = None
    allowed_networks: tuple[IPNetwork, ...] = ()

    def vet(self, backend: Backend) -> list[str]:
        """The addresses the backend's host resolves to, once the address rule allows every one of them.

        Raises ``RuleViolation`` with the reason for a loopback, private, link-local, metadata (…)
        address or a name resolving to one; [] when the name does not resolve now.
        """
        reason, addresses = backend_address.judge(
            backend.address, backend_port(backend), self.allowed_networks, self.timeout_seconds
        )
        if reason is not None:
            raise RuleViolation(f"backend {backend.name!r} at {backend.address}: {reason}")
        return addresses

    def check(self, backend: Backend) -> TlsCheck:
        """Check a TLS backend: connect to the address ``vet`` judged and port, verify the name the origin is
        asked for (its override host, else its address)."""
        addresses = self.vet(backend)
        if not addresses:
            return TlsCheck(fanout_rules.TLS_UNVERIFIED, f"{backend.address} does not resolve")
        return check_tls(
            addresses[0],
            backend_port(backend),
            timeout=self.timeout_seconds,
            cafile=self.ca_file,
            server_name=backend.override_host or backend.address,
        )


def service_for(session: Session, principal: Principal, service_id: str, action: Action) -> Service:
    """The service, once the caller may take ``action`` on its account.

    Another account's service answers exactly like a missing one (404, same body).
    """
    service = session.get(Service, service_id)
    if service is None or decide(principal, action, service.account_id) is Verdict.HIDE:
        raise NotFound(f"no service {service_id!r}")
    require(principal, action, service.account_id)
    return service


def service_json(service: Service) -> dict[str, Any]:
    """The service as the API and the audit log show it."""
    return {
        "id": service.id,
        "account_id": service.account_id,
        "name": service.name,
        "type": service.type,
        "fanout_enabled": service.fanout_enabled,
        "directors": service.directors,
        "shielding": service.shielding,
        "ngwaf": service.ngwaf,
        "cross_origin": bool(service.cross_origin),  # None until a new row is flushed: its default, off
    }


def facts(service: Service, **overrides: bool) -> ServiceFacts:
    """The rule-relevant facts of a service, with flag values possibly overridden."""
    flags = {flag: overrides.get(flag, getattr(service, flag)) for flag in FLAGS}
    return ServiceFacts(id=service.id, account_id=service.account_id, type=service.type, **flags)


def create_service(
    session: Session,
    principal: Principal,
    account_id: str,
    *,
    name: str,
    type_: str,
    flags: dict[str, bool],
    now: datetime,
) -> Service:
    """Create a Compute or Delivery service (Fanout starts off)."""
    service = Service(
        id=new_id("svc"), account_id=account_id, name=name, type=type_, fanout_enabled=False, created_at=now, **flags
    )
    session.add(service)
    audit.record(
        session,
        actor=principal.actor,
        account_id=account_id,
        action="service.create",
        target=f"service/{service.id}",
        before=None,
        after=service_json(service),
        now=now,
    )
    session.commit()
    return service


def list_services(session: Session, account_id: str) -> list[Service]:
    """The account's services, oldest first."""
    query = select(Service).where(Service.account_id == account_id).order_by(Service.created_at, Service.id)
    return list(session.scalars(query))


def update_service(
    session: Session, principal: Principal, service: Service, changes: dict[str, Any], now: datetime
) -> Service:
    """Rename a service or set its flags; directors, shielding and the Next-Gen WAF are refused with Fanout on."""
    flags = {flag: bool(changes[flag]) for flag in FLAGS if flag in changes}
    reason = fanout_rules.flags_refusal(service.fanout_enabled, facts(service, **flags))
    if reason:
        raise RuleViolation(reason)
    before = service_json(service)
    for field, value in changes.items():
        setattr(service, field, value)
    after = service_json(service)
    if after != before:
        audit.record(
            session,
            actor=principal.actor,
            account_id=service.account_id,
            action="service.update",
            target=f"service/{service.id}",
            before=before,
            after=after,
            now=now,
        )
        session.commit()
    return service


def backend_port(backend: Backend) -> int:
    """The port the backend is reached on: as given, else 443 with TLS and 80 without."""
    port = backend.settings.get(PORT)
    if isinstance(port, int):
        return port
    return DEFAULT_TLS_PORT if backend.use_tls else 80


def backend_json(backend: Backend) -> dict[str, Any]:
    """The backend as the API and the audit log show it."""
    return {
        "id": backend.id,
        "service_id": backend.service_id,
        "name": backend.name,
        "address": backend.address,
        "port": backend_port(backend),
        "use_tls": backend.use_tls,
        "override_host": backend.override_host,
        "settings": {key: value for key, value in backend.settings.items() if key != PORT},
        "tls_status": backend.tls_status,
    }


def backend_facts(backend: Backend, check: TlsCheck | None = None) -> BackendFacts:
    """The rule-relevant facts of a backend, with a fresh TLS check when one was made."""
    return BackendFacts(
        name=backend.name,
        address=f"{backend.address}:{backend_port(backend)}",
        extra_settings=frozenset(key for key in backend.settings if key != PORT),
        tls_status=check.status if check else backend.tls_status,
        tls_detail=check.detail if check else "",
    )


def create_backend(
    session: Session,
    principal: Principal,
    service: Service,
    fields: dict[str, Any],
    settings: dict[str, Any],
    tls: TlsPolicy,
    now: datetime,
) -> Backend:
    """Add a backend; on a Fanout service only the four settings and a publicly trusted certificate pass.

    ``fields`` holds name, address, use_tls and override_host; ``settings`` everything else given
    (``port`` included). A TLS backend's certificate is checked now and the outcome recorded.
    """
    name = fields["name"]
    if session.scalars(select(Backend.id).where(Backend.service_id == service.id, Backend.name == name)).first():
        raise Conflict(f"service {service.id} already has a backend named {name!r}")
    backend = Backend(id=new_id("be"), service_id=service.id, settings=settings, created_at=now, **fields)
    tls.vet(backend)  # before any connection: the TLS check below must not reach a refused address
    if service.fanout_enabled:
        reason = fanout_rules.backend_settings_refusal(name, backend_facts(backend).extra_settings)
        if reason:
            raise RuleViolation(reason)
    check = tls.check(backend) if backend.use_tls else None
    backend.tls_status = check.status if check else fanout_rules.TLS_NOT_APPLICABLE
    if service.fanout_enabled:
        reason = fanout_rules.tls_refusal(backend_facts(backend, check))
        if reason:
            raise RuleViolation(reason)
    session.add(backend)
    audit.record(
        session,
        actor=principal.actor,
        account_id=service.account_id,
        action="backend.create",
        target=f"service/{service.id}/backends/{backend.id}",
        before=None,
        after=backend_json(backend),
        now=now,
    )
    try:
        session.commit()
    except IntegrityError:  # the same name added concurrently
        session.rollback()
        raise Conflict(f"service {service.id} already has a backend named {name!r}") from None
    return backend


def list_backends(session: Session, service_id: str) -> list[Backend]:
    """The service's backends by name."""
    return list(session.scalars(select(Backend).where(Backend.service_id == service_id).order_by(Backend.name)))


def enable_fanout(session: Session, principal: Principal, service: Service, tls: TlsPolicy, now: datetime) -> Service:
    """Turn Fanout on for a service once every rule of the product page holds.

    TLS backends are checked again now (a certificate may have changed since the backend was
    added) and their recorded status updated. Enabling it twice changes nothing.
    """
    if service.fanout_enabled:
        return service
    backends = list_backends(session, service.id)
    for backend in backends:  # configured before the address rule, or the operator's list has shrunk
        tls.vet(backend)
    checked = [(b, tls.check(b) if b.use_tls else None) for b in backends]
    purchased = set(products_of(session, service.account_id))
    reason = fanout_rules.enable_refusal(purchased, facts(service), [backend_facts(b, c) for b, c in checked])
    if reason:
        raise RuleViolation(reason)
    for backend, check in checked:
        if check is not None:
            backend.tls_status = check.status
    _set_fanout(session, principal, service, True, now)
    return service


def disable_fanout(session: Session, principal: Principal, service: Service, now: datetime) -> None:
    """Turn Fanout off for a service (turning it off twice changes nothing)."""
    if service.fanout_enabled:
        _set_fanout(session, principal, service, False, now)


def _set_fanout(session: Session, principal: Principal, service: Service, on: bool, now: datetime) -> None:
    service.fanout_enabled = on
    audit.record(
        session,
        actor=principal.actor,
        account_id=service.account_id,
        action="fanout.enable" if on else "fanout.disable",
        target=f"service/{service.id}",
        before={"fanout_enabled": not on},
        after={"fanout_enabled": on},
        now=now,
    )
    event_type = webhook_events.FANOUT_ENABLED if on else webhook_events.FANOUT_DISABLED
    data = payloads.fanout_data(service.account_id, service.id)
    outbox.record_event(session.connection(), event_type, service.account_id, data, now=now)
    session.commit()


def fanout_services(session: Session, account_id: str) -> list[str]:
    """Ids of the account's services with Fanout on."""
    query = select(Service.id).where(Service.account_id == account_id, Service.fanout_enabled.is_(True))
    return sorted(session.scalars(query))


def create_publish_token(
    session: Session, principal: Principal, service: Service, name: str, now: datetime
) -> IssuedToken:
    """Issue a token that can publish to this service only; its secret is returned this once."""
    return issue_audited(
        session, principal, kind="publish", name=name, now=now, account_id=service.account_id, service_id=service.id
    )


def publish_tokens(session: Session, service_id: str) -> list[ApiToken]:
    """The service's publish tokens, newest first (never their secrets)."""
    query = select(ApiToken).where(ApiToken.service_id == service_id, ApiToken.kind == "publish")
    return list(session.scalars(query.order_by(ApiToken.created_at.desc(), ApiToken.id)))


def publish_token(session: Session, service: Service, token_id: str) -> ApiToken:
    """One publish token of the service, or ``NotFound``."""
    token = session.get(ApiToken, token_id)
    if token is None or token.service_id != service.id or token.kind != "publish":
        raise NotFound(f"no publish token {token_id!r} for service {service.id}")
    return token
