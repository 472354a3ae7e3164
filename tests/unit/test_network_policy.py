"""The backend address rule (kernel/network_policy.py): which addresses an account's backend may point at."""

from __future__ import annotations

import pytest

from kernel.network_policy import host_refusal, parse_allowed_networks, refused_address, resolution_refusal

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("169.254.169.254", "metadata"),
    ("fd00:ec2::254", "metadata"),
    ("100.64.0.1", "not a public address"),
    ("240.0.0.1", "reserved"),
]


@pytest.mark.parametrize(("ip", "category"), REFUSED)
def test_non_public_addresses_are_refused_with_their_class(ip: str, category: str) -> None:
    reason = refused_address(ip)
    assert reason is not None
    assert category in reason


@pytest.mark.parametrize("ip", ["93.184.215.14", "8.8.8.8", "2606:4700::1111"])
def test_public_addresses_pass(ip: str) -> None:
    assert refused_address(ip) is None


def test_the_operators_allowed_networks_let_their_addresses_through_but_never_metadata() -> None:
    allowed = parse_allowed_networks("127.0.0.0/8, 10.20.0.0/16,169.254.0.0/16")
    assert refused_address("127.0.0.1", allowed) is None
    assert refused_address("10.20.3.4", allowed) is None
    assert refused_address("10.21.0.1", allowed) is not None
    assert "metadata" in (refused_address("169.254.169.254", allowed) or "")


def test_a_bad_allowed_network_is_named() -> None:
    with pytest.raises(ValueError, match="'10.0.0.0/33'"):
        parse_allowed_networks("127.0.0.0/8,10.0.0.0/33")


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:18480/v1#",
        "origin.example/path",
        "origin.example#x",
        "origin.example?x",
        "user@origin.example",
        "origin .example",
        "origin.example\r\nX-Injected: 1",
        "origin.example\x00",
        "origin.example:8080",
        "-bad.example",
        "a..b",
        "999.1.1.1",
        "",
        "é.example",
    ],
)
def test_anything_but_a_host_name_or_ip_literal_is_refused(host: str) -> None:
    assert host_refusal(host) is not None


@pytest.mark.parametrize(
    "host", ["origin.example", "a-b.c.example.", "127.0.0.1", "::1", "[2001:db8::1]", "xn--bcher-kva.example"]
)
def test_host_names_and_ip_literals_pass_the_syntax_check(host: str) -> None:
    assert host_refusal(host) is None


def test_a_name_resolving_to_a_refused_address_is_refused_and_localhost_needs_no_dns() -> None:
    def resolve(name: str) -> list[str]:
        return {"internal.example": ["93.184.215.14", "10.0.0.5"], "public.example": ["93.184.215.14"]}.get(name, [])

    reason, _ = resolution_refusal("internal.example", (), resolve)
    assert reason is not None and "10.0.0.5 is a private address" in reason
    assert resolution_refusal("public.example", (), resolve) == (None, ["93.184.215.14"])
    assert resolution_refusal("unknown.example", (), resolve) == (None, [])
    assert resolution_refusal("LocalHost.", (), resolve)[0] is not None
    assert resolution_refusal("api.localhost", (), resolve)[0] is not None
