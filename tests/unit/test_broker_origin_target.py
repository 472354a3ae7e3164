"""The request target the origin is asked for: the client's path as sent, less the /s/<service_id> prefix."""

from __future__ import annotations

from typing import Any

from broker.app import PREFIX_PATH, origin_target


def target(path: str, raw_path: bytes | None, query: bytes = b"", prefixed: bool = True) -> str:
    """``origin_target`` for a scope as uvicorn builds it (``path`` percent-decoded, ``raw_path`` as sent)."""
    scope: dict[str, Any] = {"path": path, "query_string": query}
    if raw_path is not None:
        scope["raw_path"] = raw_path
    return origin_target(scope, PREFIX_PATH.match(path) if prefixed else None)


def test_the_prefix_is_removed_and_the_rest_keeps_its_percent_encoding() -> None:
    got = target("/s/svc-a/caf\u00e9 au/lait", b"/s/svc-a/caf%C3%A9%20au%2Flait", b"q=a%20b")
    assert got == "/caf%C3%A9%20au%2Flait?q=a%20b"


def test_a_service_root_is_the_origin_root() -> None:
    roots = (target("/s/svc-a", b"/s/svc-a"), target("/s/svc-a/", b"/s/svc-a/"), target("/s/svc-a", b"/s/svc-a", b"x"))
    assert roots == ("/", "/", "/?x")


def test_host_routing_sends_the_whole_path_as_sent() -> None:
    assert target("/a b/c", b"/a%20b/c", b"d=e", prefixed=False) == "/a%20b/c?d=e"


def test_without_a_raw_path_the_decoded_path_is_encoded_again() -> None:
    assert target("/caf\u00e9 x", None, prefixed=False) == "/caf%C3%A9%20x"
    assert target("/s/svc-a/a b", None) == "/a%20b"
