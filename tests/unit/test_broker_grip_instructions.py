"""GRIP instructions: headers and grip-instruct bodies, as Pushpin documents them."""

import base64
import json

import pytest
from gripcontrol import Channel as GcChannel
from gripcontrol import create_grip_channel_header, create_hold_response, create_hold_stream

from broker.exceptions import GripError
from broker.grip.instructions import (
    DEFAULT_TIMEOUT_S,
    Channel,
    HoldMode,
    KeepAlive,
    NextLink,
    instruction_from_body,
    instruction_from_headers,
    instruction_from_response,
    parse_channels,
    parse_keep_alive,
    parse_next_link,
    relays_as_it_comes,
    split_params,
    strip_grip_headers,
)


def hold_headers(*extra):
    return (("Content-Type", "text/plain"), ("Grip-Hold", "stream"), *extra)


def test_a_response_without_grip_hold_is_relayed_without_its_grip_headers():
    instruction = instruction_from_headers(200, "OK", (("X-A", "1"), ("Grip-Channel", "c")), b"body")
    assert instruction.hold is None
    assert instruction.response.headers == (("X-A", "1"),)
    assert instruction.response.body == b"body"


def test_several_grip_channel_headers_and_comma_lists_with_prev_ids_are_all_read():
    header = create_grip_channel_header([GcChannel("a", "7"), GcChannel("b")])
    instruction = instruction_from_headers(
        200, "OK", hold_headers(("Grip-Channel", header), ("Grip-Channel", "c")), b""
    )
    assert instruction.hold is not None
    assert instruction.hold.channels == (Channel("a", "7"), Channel("b"), Channel("c"))


def test_grip_timeout_defaults_to_55_seconds_and_is_read_when_given():
    default = instruction_from_headers(200, "", (("Grip-Hold", "response"), ("Grip-Channel", "c")), b"")
    given = instruction_from_headers(
        200, "", (("Grip-Hold", "response"), ("Grip-Channel", "c"), ("Grip-Timeout", "3")), b""
    )
    assert default.hold is not None and default.hold.timeout_s == DEFAULT_TIMEOUT_S == 55
    assert given.hold is not None and given.hold.mode is HoldMode.RESPONSE and given.hold.timeout_s == 3


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ((("Grip-Hold", "forever"), ("Grip-Channel", "c")), "Grip-Hold must be response or stream"),
        ((("Grip-Hold", "stream"),), "without any Grip-Channel"),
        ((("Grip-Hold", "stream"), ("Grip-Channel", " ; prev-id=1")), "empty channel name"),
        ((("Grip-Hold", "response"), ("Grip-Channel", "c"), ("Grip-Timeout", "soon")), "integer number of seconds"),
        ((("Grip-Hold", "response"), ("Grip-Channel", "c"), ("Grip-Timeout", "0")), "Grip-Timeout must be"),
        ((("Grip-Hold", "stream"), ("Grip-Channel", "c"), ("Grip-Keep-Alive", "x; format=rot13")), "format must be"),
        ((("Grip-Hold", "stream"), ("Grip-Channel", "c"), ("Grip-Keep-Alive", "!; format=base64")), "invalid base64"),
        (
            (("Grip-Hold", "stream"), ("Grip-Channel", "c"), ("Grip-Keep-Alive", "\\q; format=cstring")),
            "unknown escape",
        ),
    ],
)
def test_invalid_grip_headers_are_refused_with_the_reason(headers, reason):
    with pytest.raises(GripError, match=reason):
        instruction_from_headers(200, "", headers, b"")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("\\n; format=cstring; timeout=20", KeepAlive(b"\n", 20)),
        ("ping", KeepAlive(b"ping", 55)),
        (f"{base64.b64encode(b'x').decode()}; format=base64; timeout=5", KeepAlive(b"x", 5)),
        ('":\\r\\n\\t\\\\"; format=cstring', KeepAlive(b":\r\n\t\\", 55)),
    ],
)
def test_keep_alive_content_is_decoded_by_its_format(value, expected):
    assert parse_keep_alive(value) == expected


def test_parameters_may_be_quoted_and_quotes_protect_separators():
    assert split_params('name; a="x;y"; b=2') == ("name", {"a": "x;y", "b": "2"})
    assert parse_channels(['a; prev-id="1,2", b']) == (Channel("a", "1,2"), Channel("b"))


def test_grip_headers_are_stripped_case_insensitively():
    assert strip_grip_headers((("grip-hold", "x"), ("GRIP-SIG", "y"), ("Gripper", "z"))) == (("Gripper", "z"),)


def test_a_grip_instruct_body_made_by_gripcontrol_holds_a_response_with_its_timeout_reply():
    body = create_hold_response([GcChannel("a", "1"), GcChannel("b")], "on timeout", timeout=9).encode()
    instruction = instruction_from_body(body)
    assert instruction.hold is not None
    assert (instruction.hold.mode, instruction.hold.timeout_s) == (HoldMode.RESPONSE, 9)
    assert instruction.hold.channels == (Channel("a", "1"), Channel("b"))
    assert (instruction.response.code, instruction.response.body) == (200, b"on timeout")


def test_a_grip_instruct_stream_with_binary_body_keep_alive_and_headers_is_read():
    doc = json.loads(create_hold_stream("s"))
    doc["hold"]["keep-alive"] = {"content-bin": base64.b64encode(b"\x00").decode(), "timeout": 10}
    doc["response"] = {"code": 202, "reason": "Accepted", "headers": {"X-A": "1", "Grip-Z": "2"},
                       "body-bin": base64.b64encode(b"\x01\x02").decode()}  # fmt: skip
    instruction = instruction_from_body(json.dumps(doc).encode())
    assert instruction.hold is not None and instruction.hold.keep_alive == KeepAlive(b"\x00", 10)
    assert instruction.response.headers == (("X-A", "1"),)
    assert (instruction.response.code, instruction.response.reason, instruction.response.body) == (
        202,
        "Accepted",
        b"\x01\x02",
    )


def test_a_grip_instruct_body_without_hold_is_relayed():
    instruction = instruction_from_body(b'{"response": {"body": "hi"}}')
    assert instruction.hold is None and instruction.response.body == b"hi"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"nope", "not JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"hold": 1}', "hold must be an object"),
        (b'{"hold": {"mode": "x", "channels": [{"name": "c"}]}}', "hold.mode"),
        (b'{"hold": {"channels": []}}', "non-empty list"),
        (b'{"hold": {"channels": [{"name": ""}]}}', "non-empty name"),
        (b'{"hold": {"channels": [{"name": "c"}], "timeout": "5"}}', "hold.timeout"),
        (b'{"hold": {"channels": [{"name": "c"}], "keep-alive": 1}}', "keep-alive must be an object"),
        (b'{"hold": {"channels": [{"name": "c"}], "keep-alive": {"timeout": 0}}}', "keep-alive timeout"),
        (b'{"response": 1}', "response must be an object"),
        (b'{"response": {"code": 99}}', "HTTP status"),
        (b'{"response": {"headers": {"a": 1}}}', "map names to strings"),
        (b'{"response": {"body-bin": 5}}', "base64 string"),
        (b'{"response": {"body-bin": "!!"}}', "not valid base64"),
    ],
)
def test_invalid_grip_instruct_bodies_are_refused_with_the_reason(body, reason):
    with pytest.raises(GripError, match=reason):
        instruction_from_body(body)


def test_the_next_link_of_grip_link_is_read_with_its_timeout_and_other_links_are_ignored():
    headers = hold_headers(
        ("Grip-Channel", "c; prev-id=1"),
        ("Grip-Link", '</feed?after=1,2>; rel=next; timeout=30, </help>; rel="help"'),
    )
    instruction = instruction_from_headers(200, "OK", headers, b"")
    assert instruction.link == NextLink("/feed?after=1,2", 30)
    assert instruction_from_headers(200, "OK", (("Grip-Link", "</a>; rel=next"),), b"").link == NextLink("/a", 120)
    assert instruction_from_headers(200, "OK", (("Grip-Link", "</a>; rel=prev"),), b"").link is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("/a; rel=next", "must be <uri>; rel=next"),
        ("<>; rel=next", "must be <uri>; rel=next"),
        ("</a>; rel=next; timeout=soon", "integer number of seconds"),
        ("</a>; rel=next; timeout=-1", "0-86400 seconds"),
    ],
)
def test_an_invalid_next_link_is_refused_with_the_reason(value, reason):
    with pytest.raises(GripError, match=reason):
        parse_next_link([value])


def test_a_grip_instruct_body_takes_its_next_link_from_the_grip_link_header():
    body = create_hold_stream("c").encode()
    headers = (("Content-Type", "application/grip-instruct"), ("Grip-Link", "</more>; rel=next"))
    instruction = instruction_from_response(200, "OK", headers, body)
    assert instruction.hold is not None and instruction.hold.mode is HoldMode.STREAM
    assert instruction.link == NextLink("/more")
    by_headers = instruction_from_response(200, "OK", hold_headers(("Grip-Channel", "c")), b"hi")
    assert by_headers.hold is not None and by_headers.response.body == b"hi"


@pytest.mark.parametrize(
    ("value", "code", "reason"),
    [
        ("404", 404, ""),
        ("404 Nothing To See Here", 404, "Nothing To See Here"),
        (" 304 ", 304, ""),
        ("299 Odd", 299, "Odd"),
    ],
)
def test_grip_status_replaces_the_status_of_a_relayed_or_held_response(value, code, reason):
    relayed = instruction_from_headers(200, "OK", (("Grip-Status", value),), b"x")
    held = instruction_from_headers(200, "OK", hold_headers(("Grip-Channel", "a"), ("Grip-Status", value)), b"x")
    for instruction in (relayed, held):
        assert (instruction.response.code, instruction.response.reason) == (code, reason)
        assert not strip_grip_headers(instruction.response.headers) != instruction.response.headers


@pytest.mark.parametrize("value", ["abc", "99", "1000", "101", "200 a\rb", "-1"])
def test_an_invalid_grip_status_is_refused(value):
    with pytest.raises(GripError, match="Grip-Status"):
        instruction_from_headers(200, "OK", (("Grip-Status", value),), b"")


def test_unknown_grip_headers_are_named_and_never_an_error():
    headers = (("Grip-Unheard-Of", "1"), ("grip-unheard-of", "2"), ("GRIP-Other", "x"), ("Grip-Status", "201"))
    instruction = instruction_from_headers(200, "OK", headers, b"")
    assert instruction.ignored == ("grip-other", "grip-unheard-of")
    assert instruction.response.headers == ()
    assert instruction_from_headers(200, "OK", hold_headers(("Grip-Channel", "a")), b"").ignored == ()


def test_grip_keep_alive_mode_interval_is_read():
    assert parse_keep_alive("ka; timeout=5; mode=interval") == KeepAlive(b"ka", 5, True)
    assert parse_keep_alive("ka; timeout=5") == KeepAlive(b"ka", 5)


def test_grip_expose_headers_and_grip_set_meta_are_read_and_not_ignored():
    headers = hold_headers(
        ("Grip-Channel", "a"), ("Grip-Expose-Headers", "X-A, x-b"), ("Grip-Expose-Headers", "X-C"),
        ("Grip-Set-Meta", "user=u"),
    )  # fmt: skip
    instruction = instruction_from_headers(200, "OK", headers, b"")
    assert instruction.hold is not None and instruction.hold.expose == {"x-a", "x-b", "x-c"}
    assert instruction.ignored == ()


@pytest.mark.parametrize(
    ("headers", "relayed"),
    [
        ((("Grip-Hold", " Stream "), ("Grip-Channel", "a")), True),
        ((("Grip-Hold", "stream"), ("Grip-Channel", "a; filter=skip-self")), True),
        ((("Grip-Hold", "stream"), ("Grip-Channel", "a, b; filter=build-id")), False),  # renders the body whole
        ((("Grip-Hold", "response"), ("Grip-Channel", "a")), False),
        ((("Content-Type", "text/plain"),), False),
        ((("Content-Type", "application/grip-instruct"), ("Grip-Hold", "stream")), False),
        ((("Grip-Hold", "stream"), ("Grip-Channel", "; a=1")), False),  # unreadable: read whole, then 502
    ],
)
def test_only_a_stream_hold_without_build_id_has_its_body_relayed_as_it_comes(headers, relayed):
    assert relays_as_it_comes(200, headers) is relayed
