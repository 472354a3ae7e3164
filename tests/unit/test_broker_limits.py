"""The rules of the node's limits (broker/limits.py, kernel/http_limits.py): what a publish is keyed on,
how held connections and connections per address are counted and given back."""

from __future__ import annotations

import hashlib
import ipaddress
import json

from broker.app import publish_token_id
from broker.limits import BrokerLimits, HeldConnections
from broker.services.model import ServiceConfig
from kernel.http_limits import AddressCounts, address_key, declares_body
from kernel.rate_limit import Rate, RateLimiter

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def test_a_publish_is_keyed_on_the_tokens_id_never_its_secret() -> None:
    service = ServiceConfig(
        "svc", "acc", "http://o", ("file-secret-1", "file-secret-2"), "k", True,
        publish_token_hashes=(_sha("fm_db_secret"),), publish_token_ids=("tok_123",),
    )  # fmt: skip
    assert publish_token_id(service, (("Fastly-Key", "fm_db_secret"),)) == "tok_123"
    assert publish_token_id(service, (("Authorization", "Bearer file-secret-2"),)) == "#2"  # its place in the file
    assert publish_token_id(service, (("Fastly-Key", "wrong"),))[0] == 403  # type: ignore[index]
    assert publish_token_id(service, ())[0] == 401  # type: ignore[index]


def test_a_refused_publish_names_the_token_id_the_limit_and_the_wait_in_json() -> None:
    limits = BrokerLimits(RateLimiter(Rate(2, 1)))
    assert limits.publish_wait("svc", "tok_1") == 0
    wait = limits.publish_wait("svc", "tok_1")
    assert wait == 1 and limits.publishes_refused == {"svc": 1}
    assert limits.publish_wait("svc", "tok_2") == 0  # another token, its own bucket
    assert limits.publish_wait("other-svc", "tok_1") == 0  # the same id under another service
    body = json.loads(limits.publish_refusal("tok_1", wait))
    assert body["retry_after_seconds"] == 1
    assert "tok_1" in body["detail"] and "2 per second" in body["detail"] and "bursts of 1" in body["detail"]


def test_held_connections_are_refused_at_the_services_limit_and_given_back() -> None:
    held = HeldConnections(per_service=2, overrides={"big": 3})
    assert [held.enter("svc") for _ in range(3)] == [True, True, False]
    assert [held.enter("big") for _ in range(4)] == [True, True, True, False]
    assert held.refused == {"svc": 1, "big": 1}
    held.leave("svc")
    assert held.enter("svc") is True
    for _ in range(2):
        held.leave("svc")
    assert "svc" not in held.held  # a service holding nothing keeps no entry
    assert "limit of 3" in held.refusal("big")


def test_a_held_limit_of_zero_is_no_limit() -> None:
    held = HeldConnections(per_service=0)
    assert all(held.enter("svc") for _ in range(10_000))


def test_addresses_are_counted_ipv6_per_64_and_exempt_networks_not_at_all() -> None:
    assert address_key("2001:db8:0:1::5") == address_key("2001:db8:0:1:ffff::9") == "2001:db8:0:1::/64"
    assert address_key("2001:db8:0:2::5") != address_key("2001:db8:0:1::5")
    assert address_key("::ffff:198.51.100.4") == "198.51.100.4"
    assert address_key("127.0.0.9", LOOPBACK) is None and address_key("::1", LOOPBACK) is None
    counts = AddressCounts(limit=2, exempt=LOOPBACK)
    first, second = counts.enter("198.51.100.4"), counts.enter("198.51.100.4")
    assert (first, second, counts.enter("198.51.100.4")) == (
        (True, "198.51.100.4"),
        (True, "198.51.100.4"),
        (False, None),
    )
    assert counts.enter("198.51.100.5") == (True, "198.51.100.5")
    assert all(counts.enter("127.0.0.1") == (True, None) for _ in range(5))
    counts.leave("198.51.100.4")
    assert counts.enter("198.51.100.4")[0] is True and counts.refused == 1


def test_a_body_is_declared_by_a_content_length_over_zero_or_a_transfer_encoding() -> None:
    assert declares_body([(b"content-length", b"12")]) and declares_body([(b"transfer-encoding", b"chunked")])
    assert not declares_body([(b"content-length", b"0")]) and not declares_body([(b"host", b"x")])
