"""The Fanout product page's rules, one refusal reason each."""

from __future__ import annotations

from billing.domain.fanout_rules import (
    TLS_NOT_APPLICABLE,
    TLS_UNTRUSTED,
    TLS_UNVERIFIED,
    TLS_VERIFIED,
    BackendFacts,
    ServiceFacts,
    backend_settings_refusal,
    cancel_refusal,
    enable_refusal,
    flags_refusal,
    not_superuser_reason,
    purchase_refusal,
    tls_refusal,
)

BOTH = frozenset({"compute", "fanout"})


def compute(**flags: bool) -> ServiceFacts:
    return ServiceFacts(id="svc_1", account_id="acc_1", type="compute", **flags)


def test_only_a_superuser_may_purchase_and_the_reason_names_the_callers_role() -> None:
    assert not_superuser_reason("superuser") is None
    assert not_superuser_reason("engineer") == (
        "only an account superuser can purchase or cancel products (Compute, Fanout); the caller's role is engineer"
    )


def test_fanout_on_a_trial_account_is_refused_because_it_requires_a_paid_account() -> None:
    assert purchase_refusal("fanout", "trial", {"compute"}) == (
        "Fanout requires a paid account; this account is a trial account (ask the platform to mark it paid)"
    )


def test_fanout_without_compute_is_refused_because_compute_is_a_prerequisite() -> None:
    assert purchase_refusal("fanout", "paid", set()) == (
        "Fanout requires Compute: purchase Compute for the account first (Compute is billed separately)"
    )


def test_fanout_on_a_paid_account_with_compute_and_compute_on_a_trial_account_are_allowed() -> None:
    assert purchase_refusal("fanout", "paid", {"compute"}) is None
    assert purchase_refusal("compute", "trial", set()) is None


def test_compute_cannot_be_cancelled_while_fanout_is_purchased_but_fanout_can() -> None:
    assert cancel_refusal("compute", BOTH) == (
        "Compute is a prerequisite for Fanout: cancel Fanout before cancelling Compute"
    )
    assert cancel_refusal("compute", {"compute"}) is None
    assert cancel_refusal("fanout", BOTH) is None


def test_fanout_is_refused_for_a_service_when_the_account_has_not_purchased_it() -> None:
    assert enable_refusal({"compute"}, compute(), []) == (
        "Fanout has not been purchased for account acc_1: an account superuser must purchase it first "
        "(PUT /v1/accounts/acc_1/products/fanout)"
    )


def test_fanout_is_refused_for_a_delivery_service_with_service_chaining_suggested() -> None:
    delivery = ServiceFacts(id="svc_d", account_id="acc_1", type="delivery")

    assert enable_refusal(BOTH, delivery, []) == (
        "Fanout is only available for Compute services, and svc_d is a Delivery service; use service chaining "
        "instead: put a Compute service with Fanout enabled in front of it"
    )


def test_fanout_is_refused_for_a_service_using_directors_shielding_or_the_next_gen_waf_naming_each() -> None:
    assert enable_refusal(BOTH, compute(shielding=True), []) == (
        "Fanout is not compatible with shielding, which service svc_1 uses; turn it off first"
    )
    assert enable_refusal(BOTH, compute(directors=True, shielding=True, ngwaf=True), []) == (
        "Fanout is not compatible with backend directors, shielding and the Next-Gen WAF, which service svc_1 uses; "
        "turn it off first"
    )


def test_fanout_is_refused_for_a_service_whose_backend_sets_more_than_the_four_settings() -> None:
    backend = BackendFacts("origin", "origin.example", extra_settings=frozenset({"shield", "connect_timeout"}))

    assert enable_refusal(BOTH, compute(), [backend]) == (
        "backend 'origin' sets connect_timeout, shield: Fanout services support only the name, address, use_tls, "
        "override_host backend settings"
    )


def test_fanout_is_refused_for_a_backend_whose_certificate_did_not_verify() -> None:
    backend = BackendFacts("origin", "127.0.0.1:8443", tls_status=TLS_UNTRUSTED, tls_detail="self-signed certificate")

    assert enable_refusal(BOTH, compute(), [backend]) == (
        "backend 'origin' at 127.0.0.1:8443 presents a TLS certificate that does not verify against the public CA "
        "bundle (self-signed certificate); Fanout does not support self-signed certificates: use a certificate "
        "signed by a public certification authority"
    )


def test_an_untrusted_certificate_without_detail_is_still_refused() -> None:
    reason = tls_refusal(BackendFacts("origin", "o.example", tls_status=TLS_UNTRUSTED))

    assert reason is not None
    assert "bundle; Fanout does not support self-signed" in reason


def test_verified_unreachable_and_plain_backends_pass_the_tls_rule() -> None:
    statuses = (TLS_VERIFIED, TLS_UNVERIFIED, TLS_NOT_APPLICABLE)
    backends = [BackendFacts(f"b{i}", "o.example", tls_status=status) for i, status in enumerate(statuses)]

    assert enable_refusal(BOTH, compute(), backends) is None


def test_a_backend_with_only_the_four_settings_passes() -> None:
    assert backend_settings_refusal("origin", set()) is None


def test_adding_an_incompatible_feature_to_a_fanout_service_is_refused_but_not_to_others() -> None:
    assert flags_refusal(True, compute(ngwaf=True)) == (
        "service svc_1 has Fanout enabled, and Fanout is not compatible with the Next-Gen WAF: "
        "turn Fanout off for the service first"
    )
    assert flags_refusal(False, compute(ngwaf=True)) is None
    assert flags_refusal(True, compute()) is None
