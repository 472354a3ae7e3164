"""Requests to a service's origin: signed with ``Grip-Sig``, TLS verified against the public CA bundle.

What a client may not say to the origin: every header the broker itself sets toward the origin
(``Grip-*``, WebSocket-over-HTTP's ``Connection-Id`` and ``Meta-*``, framing and hop-by-hop
headers, and those a ``Connection`` header names) is dropped from the client's request
(``forwardable``). A failed origin request is one 502 text whatever the cause (the cause goes to
the broker's log): a client learns neither the origin's URL nor whether a port is open.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlsplit

import certifi
import jwt

from broker.grip.instructions import Headers
from broker.metrics import Tally
from broker.origin.http11 import BodyStream, Endpoint, OriginClient, StreamIf
from broker.services.model import ServiceConfig
from kernel.network_policy import IPNetwork

logger = logging.getLogger(__name__)

GRIP_SIG_ISSUER = "fanmeter"
GRIP_SIG_LIFETIME_S = 3600
# A signature is reused for this long, so it is always valid for at least 59 more minutes:
# signing (HMAC key set-up, JSON, base64) was a sixth of the broker's CPU per new connection.
GRIP_SIG_REUSE_S = 60
# Client headers never forwarded: hop-by-hop and framing headers (the broker frames its own request),
# and Connection-Id, which only the broker sets (WebSocket-over-HTTP).
NOT_FORWARDED = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer",
     "transfer-encoding", "upgrade", "host", "content-length", "accept-encoding", "connection-id"}
)  # fmt: skip
# Prefixes of headers only the broker speaks toward the origin: GRIP's (Grip-Sig, Grip-Last...) and
# WebSocket-over-HTTP's connection metadata (Meta-*).
BROKER_PREFIXES = ("grip-", "meta-")
USUAL_CONNECTION_TOKENS = frozenset({"", "close", "keep-alive"})  # name no header a client sent
# Response headers the broker sets itself when it relays (length, framing). The body is relayed
# as the origin encoded it (it is asked for no encoding), so Content-Encoding stays.
RESPONSE_DROP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})
UNREACHABLE = "the origin could not be reached"
UNTRUSTED_TLS = (
    "the origin presented a TLS certificate that does not chain to a public CA "
    "(self-signed or private CA certificates are refused)"
)
LOG_EVERY_S = 60.0  # an origin's failures are logged at most this often (per service)


@dataclass(frozen=True, slots=True)
class OriginReply:
    code: int
    reason: str
    headers: Headers
    body: bytes
    rest: BodyStream | None = None  # the body still to come, when ``stream_if`` accepted the head

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)


class OriginAddress(NamedTuple):
    """Where an origin URL points: the endpoint its connections go to, and the path its requests start with."""

    endpoint: Endpoint
    base_path: str


class OriginError(Exception):
    """The origin could not be reached or refused the TLS check; the message is for the client (502)."""


def grip_sig(key: str, now_s: float) -> str:
    """A ``Grip-Sig`` token: JWT HS256 with ``iss`` and ``exp``, as Pushpin signs proxied requests."""
    return jwt.encode({"iss": GRIP_SIG_ISSUER, "exp": int(now_s) + GRIP_SIG_LIFETIME_S}, key, algorithm="HS256")


def forwardable(headers: Headers) -> list[tuple[str, str]]:
    """Client headers fit for the origin: none the broker sets itself (``Grip-*``, ``Connection-Id``,
    ``Meta-*``), no hop-by-hop header, none a ``Connection`` header names.

    One pass, as cheap as the filter it replaced: it runs for every new client connection.
    """
    kept: list[tuple[str, str]] = []
    nominated: list[str] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered in NOT_FORWARDED or lowered.startswith(BROKER_PREFIXES):
            if lowered == "connection" and value.lower() not in USUAL_CONNECTION_TOKENS:
                nominated.append(value)
            continue
        kept.append((name, value))
    if not nominated:
        return kept
    named = {token.strip().lower() for value in nominated for token in value.split(",")}
    return [(k, v) for k, v in kept if k.lower() not in named]


def relayable(headers: Headers) -> Headers:
    return tuple((k, v) for k, v in headers if k.lower() not in RESPONSE_DROP)


def public_ca_context() -> ssl.SSLContext:
    """Verify origins against the public CA bundle (certifi), never the host's own additions."""
    return ssl.create_default_context(cafile=certifi.where())


class Origins:
    """Signed requests to services' origins (``broker.origin.http11`` does the HTTP)."""

    def __init__(
        self, timeout_s: float = 30.0, allowed_networks: tuple[IPNetwork, ...] = (), tally: Tally | None = None
    ) -> None:
        self._client = OriginClient(public_ca_context(), timeout_s)
        self._tally = tally or Tally()  # each request's duration, for the broker's metrics
        self._allowed = allowed_networks  # for guarded services' origins (kernel/network_policy.py)
        self._endpoints: dict[tuple[str, str | None, bool], OriginAddress] = {}
        self._logged: dict[str, float] = {}  # service id -> when its origin's last failure was logged
        self._signatures: dict[str, tuple[float, str]] = {}  # grip key -> (signed at, Grip-Sig)
        self._shared: dict[tuple[str, str, str, str, Headers], asyncio.Task[OriginReply]] = {}

    async def close(self) -> None:
        await self._client.close()

    async def request(
        self, service: ServiceConfig, method: str, path: str, headers: list[tuple[str, str]], body: bytes,
        stream_if: StreamIf | None = None,
    ) -> OriginReply:  # fmt: skip
        """Send one request to the service's origin, signed; transport and TLS failures raise ``OriginError``.

        With ``stream_if``, a response whose head it accepts answers at once, its body in ``rest``."""
        started = time.monotonic()
        try:
            endpoint, base_path = self._endpoint(service)
            signed = [*headers, ("Grip-Sig", self._signature(service.grip_key, time.time()))]
            if service.origin_host:  # a backend's override host: the Host asked for, and the TLS name verified
                signed.append(("Host", service.origin_host))
            reply = await self._client.request(endpoint, method, base_path + path, signed, body, stream_if)
        except ssl.SSLCertVerificationError as error:
            self._log(service, error)
            raise OriginError(UNTRUSTED_TLS) from None
        except (OSError, ValueError, OriginError) as error:  # TimeoutError and ConnectFailed are OSErrors
            self._log(service, error)
            raise OriginError(UNREACHABLE) from None
        finally:
            self._tally.origin_answered(service.service_id, time.monotonic() - started)
        return OriginReply(reply.code, reply.reason, reply.headers, reply.body, reply.rest)

    def _log(self, service: ServiceConfig, error: Exception) -> None:
        """The cause, for the operator (never the client), at most once a minute per service."""
        now = time.monotonic()
        if now - self._logged.get(service.service_id, float("-inf")) >= LOG_EVERY_S:
            self._logged[service.service_id] = now
            cause = str(error) or type(error).__name__
            logger.warning("service %s: origin %s failed: %s", service.service_id, redacted(service.origin), cause)

    async def shared_get(self, service: ServiceConfig, path: str, headers: Headers) -> OriginReply:
        """GET ``path``, sharing one origin request among every caller asking the same thing meanwhile.

        Streams recovering after one published item all fetch the same next link with the same
        ``Grip-Last`` (Pushpin shares them too); a caller that goes away never cancels it for the others.
        """
        key = (service.service_id, service.origin, service.origin_host or "", path, headers)  # each signs its own
        task = self._shared.get(key)
        if task is None:
            task = asyncio.ensure_future(self.request(service, "GET", path, list(headers), b""))
            self._shared[key] = task
            task.add_done_callback(lambda done: self._settle_shared(key, done))
        return await asyncio.shield(task)

    def _settle_shared(self, key: tuple[str, str, str, str, Headers], task: asyncio.Task[OriginReply]) -> None:
        if self._shared.get(key) is task:
            del self._shared[key]
        if not task.cancelled():
            task.exception()  # retrieved here, so an answer nobody waits for any more is not logged as lost

    def _signature(self, key: str, now_s: float) -> str:
        signed_at, token = self._signatures.get(key, (float("-inf"), ""))
        if now_s - signed_at >= GRIP_SIG_REUSE_S:
            signed_at, token = now_s, grip_sig(key, now_s)
            self._signatures[key] = (signed_at, token)
        return token

    def _endpoint(self, service: ServiceConfig) -> OriginAddress:
        """Where ``service.origin`` points, and its path prefix (parsed once per origin)."""
        key = (service.origin, service.origin_host, service.guarded)
        found = self._endpoints.get(key)
        if found is None:
            found = parse_origin(service.origin, service.origin_host, self._allowed if service.guarded else None)
            self._endpoints[key] = found
        return found


def parse_origin(origin: str, tls_name: str | None = None,
                 allowed: tuple[IPNetwork, ...] | None = None) -> OriginAddress:  # fmt: skip
    """An origin URL (``http[s]://host[:port][/base]``) as an endpoint and a path prefix; ``allowed`` set: its
    addresses are judged by the network policy when connecting (None: not judged).

    >>> address = parse_origin("https://example.com/app/")
    >>> (address.endpoint.host, address.endpoint.port, address.endpoint.allowed, address.base_path)
    ('example.com', 443, None, '/app')
    """
    try:
        parts = urlsplit(origin)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise OriginError("the origin URL is not valid") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OriginError("the origin URL is not an http(s) URL")
    return OriginAddress(Endpoint(parts.scheme, parts.hostname, port, tls_name, allowed), parts.path.rstrip("/"))


def redacted(origin: str) -> str:
    """``origin`` without user information, for logs.

    >>> redacted("http://user:secret@example.com:8080/app")
    'http://example.com:8080/app'
    """
    parts = urlsplit(origin)
    if "@" not in parts.netloc:
        return origin
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
