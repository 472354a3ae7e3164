"""The configuration-time TLS check against real TLS servers on loopback."""

from __future__ import annotations

from pathlib import Path

from billing.tls_check import check_tls
from tests.tls_origin import ca_signed, closed_port, self_signed, serving


def test_a_self_signed_certificate_is_untrusted_against_the_public_ca_bundle(tmp_path: Path) -> None:
    with serving(self_signed(tmp_path)) as origin:
        result = check_tls("127.0.0.1", origin.port, timeout=3)

    assert result.status == "untrusted"
    assert result.detail == "self-signed certificate"
    assert origin.connections == 1


def test_a_certificate_signed_by_a_trusted_ca_is_verified(tmp_path: Path) -> None:
    ca, leaf = ca_signed(tmp_path)

    with serving(leaf) as origin:
        result = check_tls("127.0.0.1", origin.port, timeout=3, cafile=str(ca))

    assert (result.status, result.detail) == ("verified", "")


def test_a_certificate_from_a_private_ca_is_untrusted_against_the_public_bundle(tmp_path: Path) -> None:
    _, leaf = ca_signed(tmp_path)

    with serving(leaf) as origin:
        result = check_tls("127.0.0.1", origin.port, timeout=3)

    assert result.status == "untrusted"
    assert result.detail == "unable to get local issuer certificate"


def test_an_origin_nobody_answers_on_is_unverified_not_refused() -> None:
    result = check_tls("127.0.0.1", closed_port(), timeout=1)

    assert result.status == "unverified"
    assert "refused" in result.detail.lower()


def test_the_name_checked_is_the_server_name_when_one_is_given(tmp_path: Path) -> None:
    ca, leaf = ca_signed(tmp_path)

    with serving(leaf) as origin:
        result = check_tls("127.0.0.1", origin.port, timeout=3, cafile=str(ca), server_name="app.example")

    assert result.status == "untrusted"
    assert "Hostname mismatch" in result.detail
