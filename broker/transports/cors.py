"""Automatic CORS for a service's HTTP answers, as Pushpin 1.36's ``auto_cross_origin`` (its ``Cors`` rules).

With a service's ``cross_origin`` on, every HTTP answer to its clients (relayed, held, streamed,
and the broker's own errors) gets the headers below, each only where the origin did not set it.
Nothing answers a preflight by itself: an ``OPTIONS`` request goes to the origin like any
other, and its answer gets the same headers (Pushpin does exactly that), so the origin decides
what a preflight is answered.

- ``Access-Control-Allow-Methods``: the request's ``Access-Control-Request-Method``, else
  ``OPTIONS, HEAD, GET, POST, PUT, DELETE``;
- ``Access-Control-Allow-Headers``: the request's ``Access-Control-Request-Headers`` (every one,
  comma-separated), when it sent some;
- ``Access-Control-Expose-Headers``: every answer header but the CORS-safelisted ones, ``Grip-*``
  and ``Access-Control-*``, when there is one;
- ``Access-Control-Allow-Credentials: true``, ``Access-Control-Allow-Origin``: the request's
  ``Origin`` (else ``*``), ``Access-Control-Max-Age: 3600``.
"""

from __future__ import annotations

from broker.asgi import Message, Send
from broker.grip.instructions import Headers

ALL_METHODS = "OPTIONS, HEAD, GET, POST, PUT, DELETE"
SIMPLE_HEADERS = frozenset(
    {"cache-control", "content-language", "content-length", "content-type", "expires", "last-modified", "pragma"}
)
MAX_AGE_S = "3600"
RawHeaders = list[tuple[bytes, bytes]]


def cors_headers(request: Headers, response: Headers) -> Headers:
    """``response`` with the CORS headers it lacks, for a request with headers ``request``.

    >>> dict(cors_headers((("Origin", "https://page.example"),), (("X-Id", "1"),)))["Access-Control-Expose-Headers"]
    'X-Id'
    """
    have = {name.lower() for name, _ in response}
    added: list[tuple[str, str]] = []
    if "access-control-allow-methods" not in have:
        added.append(("Access-Control-Allow-Methods", _first(request, "access-control-request-method") or ALL_METHODS))
    if "access-control-allow-headers" not in have:
        asked = [part.strip() for name, value in request if name.lower() == "access-control-request-headers"
                 for part in value.split(",")]  # fmt: skip
        if any(asked):
            added.append(("Access-Control-Allow-Headers", ", ".join(a for a in asked if a)))
    if "access-control-expose-headers" not in have:
        exposed = _exposable(response)
        if exposed:
            added.append(("Access-Control-Expose-Headers", ", ".join(exposed)))
    if "access-control-allow-credentials" not in have:
        added.append(("Access-Control-Allow-Credentials", "true"))
    if "access-control-allow-origin" not in have:
        added.append(("Access-Control-Allow-Origin", _first(request, "origin") or "*"))
    if "access-control-max-age" not in have:
        added.append(("Access-Control-Max-Age", MAX_AGE_S))
    return (*response, *added)


def _exposable(response: Headers) -> list[str]:
    """The answer's header names a page's script may read only when exposed, once each, in order."""
    names: list[str] = []
    seen: set[str] = set()
    for name, _ in response:
        lowered = name.lower()
        if lowered in SIMPLE_HEADERS or lowered.startswith(("access-control-", "grip-")) or lowered in seen:
            continue
        seen.add(lowered)
        names.append(name)
    return names


def _first(headers: Headers, lowered: str) -> str:
    return next((value for name, value in headers if name.lower() == lowered), "")


def with_cors(send: Send, request: RawHeaders) -> Send:
    """``send``, adding the CORS headers to the answer's start (the service has ``cross_origin`` on)."""
    asked = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in request)

    async def send_with_cors(message: Message) -> None:
        if message["type"] == "http.response.start":
            raw: RawHeaders = list(message.get("headers", ()))
            answer = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in raw)
            headers = cors_headers(asked, answer)[len(answer) :]
            message = {**message, "headers": [*raw, *((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers)]}
        await send(message)

    return send_with_cors
