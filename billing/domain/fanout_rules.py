"""The Fanout product page's rules as pure functions: each returns why a request is refused, or None.

The services in ``billing/products.py`` and ``billing/catalog.py`` gather the facts (the account's
plan and products, the service's type and flags, its backends and their TLS check) and raise
``RuleViolation`` (400) or ``PermissionDenied`` (403) with the reason these functions give.
Nothing here reads a database or opens a socket: the TLS check is done elsewhere and passed in
as a ``tls_status`` string.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass

COMPUTE, FANOUT = "compute", "fanout"
PRODUCTS = (COMPUTE, FANOUT)
SUPERUSER = "superuser"
PAID = "paid"

# The four origin server settings Fanout supports (the product page's Name, Address, Enable
# TLS and Override Host). ``port`` is part of the address (docs/decisions.md).
FANOUT_BACKEND_FIELDS = ("name", "address", "use_tls", "override_host")

# Outcomes of the configuration-time TLS check of a backend.
TLS_VERIFIED = "verified"  # the certificate chains to a public CA and names the host
TLS_UNVERIFIED = "unverified"  # the origin could not be reached; the broker checks at connect time
TLS_UNTRUSTED = "untrusted"  # reached, but the certificate failed verification (e.g. self-signed)
TLS_NOT_APPLICABLE = "not_applicable"  # the backend does not use TLS

INCOMPATIBLE_FEATURES = (
    ("directors", "backend directors"),
    ("shielding", "shielding"),
    ("ngwaf", "the Next-Gen WAF"),
)


@dataclass(frozen=True, slots=True)
class ServiceFacts:
    """What the Fanout rules need to know about a service."""

    id: str
    account_id: str
    type: str  # "compute" | "delivery"
    directors: bool = False
    shielding: bool = False
    ngwaf: bool = False


@dataclass(frozen=True, slots=True)
class BackendFacts:
    """What the Fanout rules need to know about a backend: its extra settings and its TLS check."""

    name: str
    address: str
    extra_settings: frozenset[str] = frozenset()
    tls_status: str = TLS_NOT_APPLICABLE
    tls_detail: str = ""


def not_superuser_reason(role: str | None) -> str | None:
    """Only an account superuser purchases or cancels products.

    Example: ``not_superuser_reason("engineer")`` names the engineer role; ``"superuser"`` gives None.
    """
    if role == SUPERUSER:
        return None
    return f"only an account superuser can purchase or cancel products (Compute, Fanout); the caller's role is {role}"


def purchase_refusal(product: str, plan: str, purchased: Set[str]) -> str | None:
    """Fanout needs a paid account and Compute; Compute can be purchased on any account.

    Example: ``purchase_refusal("fanout", "trial", {"compute"})`` says a paid account is required.
    """
    if product != FANOUT:
        return None
    if plan != PAID:
        return "Fanout requires a paid account; this account is a trial account (ask the platform to mark it paid)"
    if COMPUTE not in purchased:
        return "Fanout requires Compute: purchase Compute for the account first (Compute is billed separately)"
    return None


def cancel_refusal(product: str, purchased: Set[str]) -> str | None:
    """Compute cannot be cancelled while Fanout, which needs it, is still purchased.

    Example: ``cancel_refusal("compute", {"compute", "fanout"})`` asks to cancel Fanout first.
    """
    if product == COMPUTE and FANOUT in purchased:
        return "Compute is a prerequisite for Fanout: cancel Fanout before cancelling Compute"
    return None


def enable_refusal(purchased: Set[str], service: ServiceFacts, backends: Iterable[BackendFacts]) -> str | None:
    """Fanout is turned on only for a Compute service of an account that purchased it, with none of
    directors, shielding or the Next-Gen WAF, whose backends use only the four supported settings and
    whose TLS certificates chain to a public CA. The first rule broken is the reason.

    Example: a Delivery service is refused with a message suggesting service chaining.
    """
    if FANOUT not in purchased:
        return (
            f"Fanout has not been purchased for account {service.account_id}: "
            f"an account superuser must purchase it first (PUT /v1/accounts/{service.account_id}/products/fanout)"
        )
    if service.type != COMPUTE:
        return (
            f"Fanout is only available for Compute services, and {service.id} is a Delivery service; "
            "use service chaining instead: put a Compute service with Fanout enabled in front of it"
        )
    features = incompatible_features(service)
    if features:
        return f"Fanout is not compatible with {_joined(features)}, which service {service.id} uses; turn it off first"
    for backend in backends:
        reason = backend_settings_refusal(backend.name, backend.extra_settings) or tls_refusal(backend)
        if reason:
            return reason
    return None


def incompatible_features(service: ServiceFacts) -> list[str]:
    """The features of ``service`` Fanout cannot run with, in the product page's order."""
    used = {"directors": service.directors, "shielding": service.shielding, "ngwaf": service.ngwaf}
    return [label for flag, label in INCOMPATIBLE_FEATURES if used[flag]]


def flags_refusal(fanout_enabled: bool, service: ServiceFacts) -> str | None:
    """Directors, shielding and the Next-Gen WAF cannot be added to a service with Fanout on.

    Example: turning shielding on for a Fanout service is refused, naming shielding.
    """
    features = incompatible_features(service)
    if not fanout_enabled or not features:
        return None
    return (
        f"service {service.id} has Fanout enabled, and Fanout is not compatible with {_joined(features)}: "
        "turn Fanout off for the service first"
    )


def backend_settings_refusal(backend_name: str, extra_settings: Set[str]) -> str | None:
    """A Fanout service's backend may set only name, address, use_tls and override_host.

    Example: ``backend_settings_refusal("origin", {"shield"})`` names the ``shield`` setting.
    """
    if not extra_settings:
        return None
    fields = ", ".join(sorted(extra_settings))
    return (
        f"backend {backend_name!r} sets {fields}: Fanout services support only the "
        f"{', '.join(FANOUT_BACKEND_FIELDS)} backend settings"
    )


def tls_refusal(backend: BackendFacts) -> str | None:
    """A Fanout backend's TLS certificate must chain to a public CA; an unreachable origin passes
    here (recorded unverified) because the broker verifies again whenever it connects.

    Example: a backend whose check found a self-signed certificate is refused, naming the backend.
    """
    if backend.tls_status != TLS_UNTRUSTED:
        return None
    detail = f" ({backend.tls_detail})" if backend.tls_detail else ""
    return (
        f"backend {backend.name!r} at {backend.address} presents a TLS certificate that does not verify against "
        f"the public CA bundle{detail}; Fanout does not support self-signed certificates: "
        "use a certificate signed by a public certification authority"
    )


def _joined(labels: list[str]) -> str:
    if len(labels) == 1:
        return labels[0]
    return ", ".join(labels[:-1]) + " and " + labels[-1]
