"""A tiny GRIP origin for `fanmeter up`: what a customer's backend answers behind the broker.

Plain ASGI, GRIP by headers (no library needed): ``/stream`` and ``/sse`` hold a stream on
the channel named by ``?ch=`` (default ``news``), ``/poll`` holds a long-poll for 30 s.
Serve it with ``FANMETER_DEMO_GRIP_KEY=<the service's grip key> uvicorn fanmeter.demo_origin:app``.

It answers only its broker, as Pushpin's docs advise an origin: every request must carry a
``Grip-Sig`` JWT signed (HS256) with the service's GRIP key, not expired, issued by ``fanmeter``;
anything else is 403 with the reason, and nothing is held.
"""

from __future__ import annotations

import os
import time
from typing import Any
from urllib.parse import parse_qs

import jwt

from broker.origin.client import GRIP_SIG_ISSUER

Scope = dict[str, Any]
KEY_VARIABLE = "FANMETER_DEMO_GRIP_KEY"


def signature_refusal(token: str | None, key: str, now_s: float) -> str | None:
    """Why ``token`` is not a ``Grip-Sig`` of our broker (signature with ``key``, ``exp``, ``iss``), or None.

    Example: a token signed with another key gives ``"Grip-Sig refused: its signature does not verify"``.
    """
    if not token:
        return "Grip-Sig refused: the request carries none (only the broker may call this origin)"
    if not key:
        return f"Grip-Sig refused: this origin has no key ({KEY_VARIABLE} is not set)"
    try:
        claims = jwt.decode(token, key, algorithms=["HS256"], options={"verify_exp": False, "require": ["exp", "iss"]})
    except jwt.InvalidSignatureError:
        return "Grip-Sig refused: its signature does not verify"
    except jwt.PyJWTError as error:
        return f"Grip-Sig refused: not a valid token ({error})"
    if not isinstance(claims["exp"], int) or claims["exp"] <= now_s:
        return "Grip-Sig refused: it has expired"
    if claims["iss"] != GRIP_SIG_ISSUER:
        return f"Grip-Sig refused: issued by {str(claims['iss'])[:40]!r}, not {GRIP_SIG_ISSUER!r}"
    return None


def answer(path: str, channel: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body for one request to the demo origin."""
    if path == "/stream":
        return 200, [("Content-Type", "text/plain"), ("Grip-Hold", "stream"), ("Grip-Channel", channel)], b"welcome\n"
    if path == "/sse":
        headers = [("Content-Type", "text/event-stream"), ("Grip-Hold", "stream"), ("Grip-Channel", channel)]
        return 200, headers, b"event: welcome\ndata: {}\n\n"
    if path == "/poll":
        headers = [("Content-Type", "text/plain"), ("Grip-Hold", "response"), ("Grip-Channel", channel),
                   ("Grip-Timeout", "30")]  # fmt: skip
        return 200, headers, b"nothing new\n"
    return 200, [("Content-Type", "text/plain")], b"fanmeter demo origin: try /stream, /sse or /poll?ch=news\n"


async def app(scope: Scope, receive: Any, send: Any) -> None:
    """The ASGI entry point."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    token = next((v.decode("latin-1") for k, v in scope["headers"] if k.lower() == b"grip-sig"), None)
    refusal = signature_refusal(token, os.environ.get(KEY_VARIABLE, ""), time.time())
    if refusal is not None:
        status, headers, body = 403, [("Content-Type", "text/plain")], f"{refusal}\n".encode()
    else:
        query = parse_qs(scope.get("query_string", b"").decode())
        status, headers, body = answer(scope["path"], query.get("ch", ["news"])[0])
    encoded = [(k.encode(), v.encode()) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": encoded})
    await send({"type": "http.response.body", "body": body})
