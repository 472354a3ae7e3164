"""A small GRIP origin built with the real `gripcontrol` library, unchanged, as a customer's backend would be.

Served by uvicorn in a subprocess (plain HTTP, or HTTPS with a self-signed certificate for the
TLS test). Paths: /plain, /stream, /sse, /poll, /instruct, /sig, /ws (WebSocket-over-HTTP),
/hostile (answers the status, headers and body its ``a`` parameter asks for: a hostile origin),
/rpoll, /rstream for reliable delivery (holds with prev-id; answers to Grip-Last), /raw/...
(answers the request target as it arrived) and /headers (answers the request's headers as JSON
pairs, in order, repeats kept; the WebSocket text "headers" at /ws answers the same), /status
(answers with ``Grip-Status: <status>``, held a second with ``hold``), /fstream and /bstream (filtered streams),
/slowstream and /bigstream (a first body sent in parts, slowly or large).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from gripcontrol import (
    Channel,
    WebSocketContext,
    WebSocketEvent,
    create_grip_channel_header,
    create_hold_response,
    decode_websocket_events,
    encode_websocket_events,
    validate_sig,
)

GRIP_KEY = os.environ.get("GRIP_ORIGIN_KEY", "origin-secret")
# Who may sign: fanmeter's broker, and Pushpin in the conformance tests (its sig_iss).
ISSUERS = tuple(os.environ.get("GRIP_ORIGIN_ISSUERS", "fanmeter,pushpin").split(","))
REFUSED = b"Grip-Sig refused: this origin answers only its GRIP proxy\n"


# More services' keys, one a line, read on each request: a test that adds services in front of this
# origin after it started (tests/e2e/test_broker_database_services.py) writes their keys here.
KEYS_FILE = os.environ.get("GRIP_ORIGIN_KEYS_FILE")


def grip_keys() -> list[str]:
    extra = Path(KEYS_FILE).read_text().split() if KEYS_FILE and Path(KEYS_FILE).exists() else []
    return [GRIP_KEY, *extra]


def signed_by_proxy(token: str) -> bool:
    """Pushpin's advice to origins: validate ``Grip-Sig`` (signature with the key, ``exp``, ``iss``)."""
    return any(validate_sig(token, key, iss=issuer) for key in grip_keys() for issuer in ISSUERS)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
    pairs = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
    if not signed_by_proxy(headers.get("grip-sig", "")):
        status, out_headers, out_body = 403, [("Content-Type", "text/plain")], REFUSED
    elif scope["path"] == "/hostile":  # whatever answer the test asks for: ``a`` is base64url JSON
        status, out_headers, out_body = hostile_answer(query["a"])
        await send({"type": "http.response.start", "status": status, "headers": out_headers})
        await send({"type": "http.response.body", "body": out_body})
        return
    elif scope["path"].startswith("/raw/"):  # the request target exactly as it arrived
        raw = scope["raw_path"] + (b"?" + scope["query_string"] if scope["query_string"] else b"")
        status, out_headers, out_body = 200, [("Content-Type", "text/plain")], raw
    elif scope["path"] == "/headers":
        status, out_headers, out_body = 200, [("Content-Type", "application/json")], json.dumps(pairs).encode()
    elif scope["path"] == "/ws":
        status, out_headers, out_body = websocket_over_http(headers, body, query, pairs)
    elif scope["path"] in CHUNKED:
        await CHUNKED[scope["path"]](query, send)
        return
    else:
        status, out_headers, out_body = route(scope["path"], query, headers)
    await send({"type": "http.response.start", "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in out_headers]})  # fmt: skip
    await send({"type": "http.response.body", "body": out_body})


# A stream hold whose first body the origin sends in parts: /slowstream (its first ``first`` bytes, then
# the rest once /release?key= names its ``key``), /bigstream (``mib`` MiB in 64 KiB lines, then "end").
RELEASES: dict[str, asyncio.Event] = {}
STREAM_HEAD = [(b"content-type", b"text/plain"), (b"grip-hold", b"stream")]


async def slow_stream(query: dict[str, str], send: Any) -> None:
    channel = query.get("ch", "test").encode()
    await send({"type": "http.response.start", "status": 200, "headers": [*STREAM_HEAD, (b"grip-channel", channel)]})
    await send({"type": "http.response.body", "body": b"a" * (int(query["first"]) - 1) + b"\n", "more_body": True})
    released = RELEASES.setdefault(query["key"], asyncio.Event())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(released.wait(), 20)
    await send({"type": "http.response.body", "body": b"rest\n"})


async def big_stream(query: dict[str, str], send: Any) -> None:
    channel = query.get("ch", "test").encode()
    await send({"type": "http.response.start", "status": 200, "headers": [*STREAM_HEAD, (b"grip-channel", channel)]})
    for _ in range(int(query["mib"]) * 16):
        await send({"type": "http.response.body", "body": b"x" * 65535 + b"\n", "more_body": True})
    await send({"type": "http.response.body", "body": b"end\n"})


async def release(query: dict[str, str], send: Any) -> None:
    RELEASES.setdefault(query["key"], asyncio.Event()).set()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"released\n"})


CHUNKED = {"/slowstream": slow_stream, "/bigstream": big_stream, "/release": release}


def hostile_answer(encoded: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """A hostile origin's answer: ``{"status", "headers": [[name, value]...], "body"}`` (body base64), as asked."""
    answer = json.loads(base64.urlsafe_b64decode(encoded))
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer["headers"]]
    return answer["status"], headers, base64.b64decode(answer["body"])


def route(path: str, query: dict[str, str], headers: dict[str, str]):
    channel = query.get("ch", "test")
    if path == "/plain":
        return 200, [("Content-Type", "text/plain"), ("X-Origin", "yes")], b"plain answer\n"
    if path == "/stream":
        hold = [("Grip-Hold", "stream"), ("Grip-Channel", create_grip_channel_header(channel))]
        if "ka" in query:
            mode = f"; mode={query['kamode']}" if "kamode" in query else ""
            hold.append(("Grip-Keep-Alive", f"ka\\n; format=cstring; timeout={query['ka']}{mode}"))
        return 200, [("Content-Type", "text/plain"), *hold], b"stream open\n"
    if path == "/sse":
        hold = [("Grip-Hold", "stream"), ("Grip-Channel", create_grip_channel_header(channel))]
        return 200, [("Content-Type", "text/event-stream"), *hold], b"event: open\ndata: ready\n\n"
    if path == "/poll":
        timeout = query.get("timeout", "55")
        hold = [("Grip-Hold", "response"), ("Grip-Channel", channel), ("Grip-Timeout", timeout)]
        if "expose" in query:  # Grip-Expose-Headers naming X-Origin-Kept (and X-Pub, which a publish sets)
            hold += [("Grip-Expose-Headers", "X-Origin-Kept, x-pub"), ("X-Origin-Kept", "yes"), ("X-Pub", "origin"),
                     ("X-Not-Named", "no")]  # fmt: skip
        return 200, [("Content-Type", "text/plain"), *hold], b"timed out\n"
    if path == "/instruct":
        instruct = create_hold_response(channel, "instruct timed out\n", timeout=int(query.get("timeout", "55")))
        return 200, [("Content-Type", "application/grip-instruct")], instruct.encode()
    if path == "/sig":
        valid = validate_sig(headers.get("grip-sig", ""), GRIP_KEY)
        return 200, [("Content-Type", "text/plain")], b"signed\n" if valid else b"not signed\n"
    if path == "/status":  # Grip-Status: <status>, with a response hold of 1 s when ``hold``
        grip = [("Grip-Status", query["status"])]
        if "hold" in query:
            grip += [("Grip-Hold", "response"), ("Grip-Channel", channel), ("Grip-Timeout", "1")]
        if "unknown" in query:  # a GRIP header no broker knows
            grip.append(("Grip-Unheard-Of", "x"))
        return 200, [("Content-Type", "text/plain"), *grip], b"" if "empty" in query else b"status body\n"
    if path == "/fstream":  # a stream on ``ch`` with ``; filter=`` for each of ``filters``, Grip-Set-Meta user
        filters = "".join(f"; filter={f}" for f in query.get("filters", "").split(",") if f)
        prev = f"; prev-id={query['prev']}" if "prev" in query else ""  # then itself as the next link
        grip = [("Grip-Hold", "stream"), ("Grip-Channel", f"{channel}{prev}{filters}")]
        if prev:
            grip.append(("Grip-Link", f"</fstream?{_query(query)}>; rel=next"))
        if "also" in query:
            grip.append(("Grip-Channel", f"{query['also']}{filters}"))
        if "user" in query:
            grip.append(("Grip-Set-Meta", f"user={query['user']}"))
        return 200, [("Content-Type", "text/plain"), *grip], b"stream open\n"
    if path == "/fpoll":  # a long-poll on ``ch`` with ``; filter=`` for each of ``filters``, Grip-Set-Meta user
        filters = "".join(f"; filter={f}" for f in query.get("filters", "").split(",") if f)
        grip = [("Grip-Hold", "response"), ("Grip-Channel", f"{channel}{filters}"), ("Grip-Timeout", "20")]
        if "user" in query:
            grip.append(("Grip-Set-Meta", f"user={query['user']}"))
        return 200, [("Content-Type", "text/plain"), *grip], b"timed out\n"
    if path == "/bstream":  # build-id: a stream on ``ch`` with prev-id ``prev``, its id_format the channel's prev-id
        return build_id_stream(query, channel)
    if path == "/rpoll":
        return reliable_poll(query, headers, channel)
    if path == "/rstream":
        return reliable_stream(query, headers, channel)
    return 404, [("Content-Type", "text/plain")], b"no such path\n"


def build_id_stream(query: dict[str, str], channel: str):
    """A stream filtered by build-id (``enc=hex`` hex-encodes), ``id_format`` naming the channel's prev-id,
    and itself as the next link (a prev-id needs one); its first body renders a literal id, ``%(first)I``."""
    meta = f'id_format="%({channel})s"' + (", id_encoding=hex" if query.get("enc") == "hex" else "")
    link = f"</bstream?{_query(query)}>; rel=next"
    grip = [("Grip-Hold", "stream"), ("Grip-Channel", f"{channel}; prev-id={query['prev']}; filter=build-id"),
            ("Grip-Link", link), ("Grip-Set-Meta", meta)]  # fmt: skip
    return 200, [("Content-Type", "text/plain"), *grip], b"stream open %(first)I\n"


def reliable_poll(query: dict[str, str], headers: dict[str, str], channel: str):
    """A long-poll held with ``prev=`` as its prev-id (skip-self for ``user=``); asked again with Grip-Last, it
    answers at once, or with ``then=stream`` holds the stream /rstream would, with ``now=`` as its prev-id."""
    if "grip-last" in headers and query.get("then") == "stream":
        return reliable_stream({"ch": channel, "prev": query["now"]}, {}, channel)  # a new /rstream
    if "grip-last" in headers:
        return 200, [("Content-Type", "text/plain")], f"recovered {headers['grip-last']}\n".encode()
    hold = [("Grip-Hold", "response"), ("Grip-Channel", create_grip_channel_header(Channel(channel, query["prev"])))]
    if "user" in query:  # skip-self for ``user``
        hold = [hold[0], ("Grip-Channel", f"{channel}; prev-id={query['prev']}; filter=skip-self"),
                ("Grip-Set-Meta", f"user={query['user']}")]  # fmt: skip
    hold.append(("Grip-Timeout", query.get("timeout", "55")))
    return 200, [("Content-Type", "text/plain"), *hold], b"timed out\n"


def reliable_stream(query: dict[str, str], headers: dict[str, str], channel: str):
    """A stream held with ``prev=`` as its prev-id and itself as the next link (unless ``nolink``).

    Asked with Grip-Last (recovery) it appends ``recovered <Grip-Last>`` and holds again with
    ``now=`` as the prev-id; ``end`` answers without a hold instead, and ``pages=n`` answers n-1
    pages without a hold, each linking to the next, before holding.
    """
    if "grip-last" not in headers:
        body, prev = b"stream open\n", query["prev"]
    else:
        page, pages = int(query.get("page", "1")), int(query.get("pages", "1"))
        body, prev = f"recovered {headers['grip-last']}\n".encode(), query.get("now", query["prev"])
        if page < pages:
            link = f"</rstream?{_query({**query, 'page': str(page + 1)})}>; rel=next"
            return 200, [("Content-Type", "text/plain"), ("Grip-Link", link)], f"page {page}\n".encode()
        if "end" in query:
            return 200, [("Content-Type", "text/plain")], body
    hold = [("Grip-Hold", "stream"), ("Grip-Channel", create_grip_channel_header(Channel(channel, prev)))]
    if "nolink" not in query:
        timeout = f"; timeout={query['linktimeout']}" if "linktimeout" in query else ""
        next_query = _query({k: v for k, v in query.items() if k not in ("prev", "page")} | {"prev": prev})
        hold.append(("Grip-Link", f"</rstream?{next_query}>; rel=next{timeout}"))
    return 200, [("Content-Type", "text/plain"), *hold], body


def _query(params: dict[str, str]) -> str:
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()))


def websocket_over_http(headers: dict[str, str], body: bytes, query: dict[str, str], pairs: list[tuple[str, str]]):
    """Echo with GRIP: OPEN subscribes to ``ch`` (and ``also``, with the comma-separated ``filters``, after
    a set-meta of ``user=<user>`` when given); text "detach"/"unsub"/"close" exercise control messages,
    "headers" answers this request's ``Connection-Id`` and ``Meta-*`` headers (JSON pairs, repeats kept)."""
    channel = query.get("ch", "test")
    meta = {k[len("meta-") :]: v for k, v in headers.items() if k.startswith("meta-")}
    context = WebSocketContext(headers["connection-id"], meta, decode_websocket_events(body))
    out: list[WebSocketEvent] = []
    if context.is_opening():
        context.accept()
        if "user" in query:
            context.send_control(json.dumps({"type": "set-meta", "name": "user", "value": query["user"]}))
        filters = [f for f in query.get("filters", "").split(",") if f]
        for name in [channel, *([query["also"]] if "also" in query else [])]:
            context.send_control(json.dumps({"type": "subscribe", "channel": name, "filters": filters}))
        context.send("welcome")
        context.meta["user"] = "alice"
    while context.can_recv():
        message = context.recv()
        if message is None:
            context.close()
            break
        if message == "detach":
            context.detach()
        elif message == "unsub":
            context.unsubscribe(channel)
            context.send("unsubscribed")
        elif message == "whoami":
            context.send(f"user={context.meta.get('user', '')}")
        elif message == "close":
            context.close(4001)
        elif message.startswith("setmeta "):  # "setmeta <name>[=<value>]": set (or without a value, unset) meta
            name, has_value, value = message[len("setmeta ") :].partition("=")
            fields = {"name": name, **({"value": value} if has_value else {})}
            context.send_control(json.dumps({"type": "set-meta", **fields}))
            context.send("meta set")
        elif message.startswith("control "):  # a raw control message, then a marker the client waits for
            context.send_control(message[len("control ") :])
            context.send("control sent")
        elif message == "headers":
            context.send(json.dumps([(k, v) for k, v in pairs if k == "connection-id" or k.startswith("meta-")]))
        else:
            context.send(f"echo:{message}")
    if context.accepted:
        out.append(WebSocketEvent("OPEN"))
    out.extend(context.out_events)
    if context.closed:
        out.append(WebSocketEvent("CLOSE", (context.out_close_code or 1000).to_bytes(2, "big")))
    reply_headers = [("Content-Type", "application/websocket-events"), ("Sec-WebSocket-Extensions", "grip")]
    reply_headers += [(f"Set-Meta-{k}", v) for k, v in context.meta.items() if context.orig_meta.get(k) != v]
    return 200, reply_headers, encode_websocket_events(out)
