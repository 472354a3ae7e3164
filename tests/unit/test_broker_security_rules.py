"""Issue 15's broker findings as rules: what a client may say to the origin, what a publisher may publish,
which origins a service may have and where a connection may go, and what a path may name."""

import asyncio
import json
import re

import pytest

from broker.app import is_ws_events, remove_dot_segments
from broker.exceptions import ConfigError, PublishError
from broker.grip.publish import MAX_JSON_DEPTH, parse_publish_body
from broker.origin.client import OriginError, Origins, forwardable, parse_origin, redacted
from broker.origin.http11 import AddressRefused, Endpoint, _judged_addresses
from broker.services.file import parse_config
from broker.services.model import ServiceConfig
from broker.services.rows import BackendRow, ServiceRow, service_configs
from kernel.network_policy import parse_allowed_networks

# 1. What a client may say to the origin.


def test_no_header_the_broker_sets_toward_the_origin_is_taken_from_a_client():
    client = (
        ("Grip-Sig", "forged"), ("grip-last", "c; last-id=1"), ("Grip-Feature", "x"), ("Connection-Id", "forged"),
        ("Meta-User", "mallory"), ("Host", "x"), ("Content-Length", "3"), ("Transfer-Encoding", "chunked"),
        ("Connection", "keep-alive, X-Hop"), ("X-Hop", "1"), ("connection", "x-other"), ("X-Other", "1"),
        ("Proxy-Connection", "x"), ("Accept", "*/*"),
        ("X-Metadata", "kept: only Meta- is the broker's"),
    )  # fmt: skip
    assert forwardable(client) == [("Accept", "*/*"), ("X-Metadata", "kept: only Meta- is the broker's")]


@pytest.mark.parametrize(
    ("content_type", "refused"),
    [("application/websocket-events", True), ("Application/WebSocket-Events ; charset=x", True),
     ("application/json", False), (None, False)],
)  # fmt: skip
def test_a_client_claiming_websocket_events_is_recognised(content_type, refused):
    headers = [(b"content-type", content_type.encode())] if content_type else []  # as uvicorn's scope has them
    assert is_ws_events([(b"accept", b"*/*"), *headers]) is refused


# 4 and 5. What a publisher may publish.


def body(*items):
    return json.dumps({"items": list(items)}).encode()


def response_item(headers):
    return {"channel": "c", "http-response": {"headers": headers, "body": "x"}}


def test_framing_hop_by_hop_and_grip_headers_of_a_published_response_are_dropped_once_at_publish():
    headers = {
        "Content-Length": "9", "Transfer-Encoding": "chunked", "Connection": "close", "Keep-Alive": "1", "TE": "x",
        "Trailer": "x", "Upgrade": "h2c", "Proxy-Authenticate": "x", "Grip-Hold": "stream", "X-Kept": " yes ",
    }  # fmt: skip
    (item,) = parse_publish_body(body(response_item(headers)))
    assert item.formats["http-response"].headers == (("X-Kept", "yes"),)


def test_a_published_response_may_repeat_a_header_as_name_value_pairs():
    (item,) = parse_publish_body(body(response_item([["Set-Cookie", "a=1"], ["Set-Cookie", "b=2"]])))
    assert item.formats["http-response"].headers == (("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"))


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"X\r\nY": "a"}, "'X\\r\\nY' is not a valid header name"),
        ({"X Y": "a"}, "is not a valid header name"),
        ({"": "a"}, "is not a valid header name"),
        ({"X": "a\r\nInjected: 1"}, "headers.X: the value holds CR, LF, NUL"),
        ({"X": "a\x00"}, "holds CR, LF, NUL"),
        ({"X": "\u2603"}, "outside Latin-1"),
        ({"X": 1}, "must map names to strings"),
        ([["X"]], "must map names to strings"),
    ],
)
def test_a_published_response_header_that_is_not_valid_http_is_refused(headers, reason):
    with pytest.raises(PublishError, match=re.escape(reason)):
        parse_publish_body(body(response_item(headers)))


@pytest.mark.parametrize(
    ("close", "reason"),
    [({"code": 1006}, "close code a server may send"), ({"code": 1005}, "close code a server may send"),
     ({"reason": "x" * 124}, "at most 123 bytes")],
)  # fmt: skip
def test_a_published_websocket_close_that_cannot_be_sent_is_refused(close, reason):
    with pytest.raises(PublishError, match=re.escape(reason)):
        parse_publish_body(body({"channel": "c", "ws-message": {"action": "close", **close}}))


def test_latin_1_values_and_tabs_are_valid_header_values():
    (item,) = parse_publish_body(body(response_item({"X-Caf": "caf\u00e9\tau lait"})))
    assert item.formats["http-response"].headers == (("X-Caf", "caf\u00e9\tau lait"),)


VALID = b'{"channel": "c", "http-stream": {"content": "x"}}'


@pytest.mark.parametrize(
    ("hostile", "reason"),
    [
        (b"[" * 100_000, f"deeper than {MAX_JSON_DEPTH} levels"),
        (b'{"a":' * 100_000, f"deeper than {MAX_JSON_DEPTH} levels"),
        (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), f"deeper than {MAX_JSON_DEPTH} levels"),
        (b"1" * 5_000, "a number has more than 20 digits"),
        (b"-" + b"1" * 21, "a number has more than 20 digits"),
        (b"1e999", "a number is too large"),
        (b"NaN", "NaN is not a JSON number"),
        (b"-Infinity", "-Infinity is not a JSON number"),
        (b'"\\ud800"', "lone surrogate"),
        (b'"\\uDFFF x"', "lone surrogate"),
        (b'{"k": 1, "k": 2}', "an object names the key 'k' twice"),
    ],
)
def test_hostile_json_is_refused_with_its_reason_whatever_item_holds_it(hostile, reason):
    with pytest.raises(PublishError, match=re.escape(reason)):
        parse_publish_body(b'{"items": [' + VALID + b', {"channel": "c", "x": ' + hostile + b"}]}")


def test_ordinary_json_passes_the_checks():
    inner = MAX_JSON_DEPTH - 3  # the body's object, its items list and the item are three levels
    nested = (b"[" * inner + b"]" * inner).decode()
    text = (
        '{"items": [{"channel": "\\ud83d\\ude00", "x": %s, "n": 12345678901234567890, '
        '"http-stream": {"content": "x"}}]}'
    )
    (item,) = parse_publish_body((text % nested).encode())
    assert item.channel == "\U0001f600"  # a surrogate pair is a character


# 2 and 6. Which origins a service may have, and where its connections may go.

FILE_SERVICE = {"service_id": "s1", "account_id": "a1", "grip_key": "k", "fanout_enabled": True}


@pytest.mark.parametrize(
    ("origin", "reason"),
    [
        ("http://admin:hunter2@origin.example/", "must not carry credentials"),
        ("http://user@origin.example/", "must not carry credentials"),
        ("http://origin.example:99999/", "is not a valid URL"),
        ("http://origin.example:x/", "is not a valid URL"),
        ("http://origin.example/app?x=1", "must not have a query or a fragment"),
        ("http://127.0.0.1:18480/v1#", "must not have a query or a fragment"),
    ],
)
def test_a_services_file_origin_that_is_not_a_plain_origin_is_refused_without_echoing_credentials(origin, reason):
    with pytest.raises(ConfigError, match=re.escape(reason)) as refused:
        parse_config({"services": [{**FILE_SERVICE, "origin": origin}]})
    assert "hunter2" not in str(refused.value)


def test_file_services_are_the_operators_and_are_not_judged_database_services_are():
    config = parse_config({"services": [{**FILE_SERVICE, "origin": "http://127.0.0.1:9"}]})
    assert config.services["s1"].guarded is False
    rows, _ = service_configs([ServiceRow("s1", "a1", True)], [backend()], [], "s" * 32)
    assert rows.services["s1"].guarded is True


def backend(**fields):
    values = {"service_id": "s1", "name": "origin", "address": "origin.example", "use_tls": False,
              "override_host": None, "settings": {}, "tls_status": "unchecked"}  # fmt: skip
    return BackendRow(**{**values, **fields})


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"address": "127.0.0.1:18480/v1#"}, "invalid address (the host contains '/'"),
        ({"address": "user:pw@origin.example"}, "invalid address (the host contains '@'"),
        ({"address": ""}, "invalid address (the host is empty)"),
        ({"settings": {"port": 0}}, "invalid port"),
        ({"settings": {"port": "80"}}, "invalid port"),
        ({"override_host": "a.example\r\nX-Injected: 1"}, "invalid override host"),
    ],
)
def test_a_database_backend_that_is_not_an_address_is_not_served_and_says_why(fields, reason):
    config, problems = service_configs([ServiceRow("s1", "a1", True)], [backend(**fields)], [], "s" * 32)
    assert config.services == {}
    assert len(problems) == 1 and reason in problems[0] and "pw" not in problems[0]


def test_an_ipv6_backend_address_may_come_with_or_without_brackets():
    for address in ("2001:db8::1", "[2001:db8::1]"):
        config, problems = service_configs([ServiceRow("s1", "a1", True)], [backend(address=address)], [], "s" * 32)
        assert problems == [] and config.services["s1"].origin == "http://[2001:db8::1]:80"


def test_an_origin_url_that_does_not_parse_is_an_origin_error_not_a_crash():
    with pytest.raises(OriginError, match="not valid"):
        parse_origin("http://127.0.0.1:18480:1/")
    assert redacted("https://u:p@example.com/app") == "https://example.com/app"


ALLOWED = parse_allowed_networks("127.0.0.0/8")


@pytest.mark.parametrize(
    ("host", "allowed", "refused"),
    [
        ("127.0.0.1", (), "127.0.0.1 is a loopback address"),
        ("localhost", (), "localhost names this machine"),
        ("10.0.0.1", ALLOWED, "10.0.0.1 is a private address"),
        ("169.254.169.254", parse_allowed_networks("169.254.0.0/16"), "a cloud metadata address"),
        ("::ffff:127.0.0.1", (), "127.0.0.1 is a loopback address"),
    ],
)
def test_a_guarded_connection_refuses_what_the_network_policy_refuses(host, allowed, refused):
    with pytest.raises(AddressRefused, match=re.escape(refused)):
        asyncio.run(_judged_addresses(Endpoint("http", host, 80, None, allowed)))


def test_a_guarded_connection_goes_only_to_the_addresses_judged():
    assert asyncio.run(_judged_addresses(Endpoint("http", "127.0.0.1", 80, None, ALLOWED))) == ["127.0.0.1"]
    assert asyncio.run(_judged_addresses(Endpoint("http", "localhost", 80, None, ALLOWED))) == ["127.0.0.1"]


def test_a_refused_origin_is_the_one_unreachable_502_and_the_cause_is_logged_not_answered(caplog):
    service = ServiceConfig("s1", "a1", "http://127.0.0.1:9", (), "k" * 32, True, guarded=True)
    origins = Origins()
    with pytest.raises(OriginError) as failed:
        asyncio.run(origins.request(service, "GET", "/admin/metrics", [], b""))
    assert str(failed.value) == "the origin could not be reached"
    assert "127.0.0.1 is a loopback address" in caplog.text


# 11. What a path may name.


@pytest.mark.parametrize(
    ("path", "normal"),
    [
        ("/../../other/x", "/other/x"),
        ("/%2e%2e/%2E%2E/x", "/x"),
        ("/a/./b/../c", "/a/c"),
        ("/a/b/..", "/a/"),
        ("/a/.", "/a/"),
        ("/..", "/"),
        ("/a//../b", "/a/b"),
        ("/a/..b/.c/x..", "/a/..b/.c/x.."),  # names that only start or end with dots are names
        ("/caf%C3%A9/%2e", "/caf%C3%A9/"),
    ],
)
def test_dot_segments_are_removed_and_never_climb_above_the_root(path, normal):
    assert remove_dot_segments(path) == normal
