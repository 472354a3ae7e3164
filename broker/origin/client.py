"""Requests to a service's origin: signed with ``Grip-Sig``, TLS verified against the public CA bundle."""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlsplit

import certifi
import jwt

from broker.grip.instructions import Headers, is_grip_header
from broker.origin.http11 import ConnectFailed, Endpoint, OriginClient
from broker.services.model import ServiceConfig

GRIP_SIG_ISSUER = "fanmeter"
GRIP_SIG_LIFETIME_S = 3600
# A signature is reused for this long, so it is always valid for at least 59 more minutes:
# signing (HMAC key set-up, JSON, base64) was a sixth of the broker's CPU per new connection.
GRIP_SIG_REUSE_S = 60
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding",
     "upgrade", "host", "content-length", "accept-encoding"}
)  # fmt: skip
# Response headers the broker sets itself when it relays (length, framing). The body is relayed
# as the origin encoded it (it is asked for no encoding), so Content-Encoding stays.
RESPONSE_DROP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


@dataclass(frozen=True, slots=True)
class OriginReply:
    code: int
    reason: str
    headers: Headers
    body: bytes

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
    """Client headers fit for the origin: no hop-by-hop headers, no client-supplied ``Grip-*``."""
    return [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP and not is_grip_header(k)]


def relayable(headers: Headers) -> Headers:
    return tuple((k, v) for k, v in headers if k.lower() not in RESPONSE_DROP)


def public_ca_context() -> ssl.SSLContext:
    """Verify origins against the public CA bundle (certifi), never the host's own additions."""
    return ssl.create_default_context(cafile=certifi.where())


class Origins:
    """Signed requests to services' origins (``broker.origin.http11`` does the HTTP)."""

    def __init__(self, timeout_s: float = 30.0) -> None:
        self._client = OriginClient(public_ca_context(), timeout_s)
        self._endpoints: dict[tuple[str, str | None], OriginAddress] = {}
        self._signatures: dict[str, tuple[float, str]] = {}  # grip key -> (signed at, Grip-Sig)
        self._shared: dict[tuple[str, str, str, str, Headers], asyncio.Task[OriginReply]] = {}

    async def close(self) -> None:
        await self._client.close()

    async def request(
        self, service: ServiceConfig, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> OriginReply:
        """Send one request to the service's origin, signed; transport and TLS failures raise ``OriginError``."""
        endpoint, base_path = self._endpoint(service)
        signed = [*headers, ("Grip-Sig", self._signature(service.grip_key, time.time()))]
        if service.origin_host:  # a backend's override host: the Host asked for, and the TLS name verified
            signed.append(("Host", service.origin_host))
        try:
            reply = await self._client.request(endpoint, method, base_path + path, signed, body)
        except ssl.SSLCertVerificationError:
            raise OriginError(
                f"origin {service.origin} presented a TLS certificate that does not chain to a public CA "
                "(self-signed or private CA certificates are refused)"
            ) from None
        except ConnectFailed as error:
            raise OriginError(f"cannot connect to origin {service.origin}: {error}") from None
        except TimeoutError:
            raise OriginError(f"origin {service.origin} did not answer in time") from None
        except (OSError, ValueError) as error:
            raise OriginError(f"origin {service.origin} failed: {error or type(error).__name__}") from None
        return OriginReply(reply.code, reply.reason, reply.headers, reply.body)

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
        key = (service.origin, service.origin_host)
        found = self._endpoints.get(key)
        if found is None:
            found = parse_origin(service.origin, service.origin_host)
            self._endpoints[key] = found
        return found


def parse_origin(origin: str, tls_name: str | None = None) -> OriginAddress:
    """An origin URL (``http[s]://host[:port][/base]``) as an endpoint and a path prefix.

    >>> parse_origin("https://example.com/app/")
    OriginAddress(endpoint=Endpoint(scheme='https', host='example.com', port=443, server_hostname=None),
                  base_path='/app')
    """
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OriginError(f"origin {origin!r} is not an http(s) URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return OriginAddress(Endpoint(parts.scheme, parts.hostname, port, tls_name), parts.path.rstrip("/"))
