"""Requests to a service's origin: signed with ``Grip-Sig``, TLS verified against the public CA bundle."""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass

import certifi
import httpx
import jwt

from broker.config import ServiceConfig
from broker.grip import Headers, is_grip_header

GRIP_SIG_ISSUER = "fanmeter"
GRIP_SIG_LIFETIME_S = 3600
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding",
     "upgrade", "host", "content-length", "accept-encoding"}
)  # fmt: skip
# Response headers the broker sets itself when it relays (length, framing, decoded body).
RESPONSE_DROP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"})


@dataclass(frozen=True, slots=True)
class OriginReply:
    code: int
    reason: str
    headers: Headers
    body: bytes

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)


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
    def __init__(self, timeout_s: float = 30.0) -> None:
        self._client = httpx.AsyncClient(
            verify=public_ca_context(),
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            # Origin requests are short (a hold lives on the broker, not on the origin connection), so a
            # small pool suffices; httpcore scans its whole pool per request, so a big one costs CPU per connect.
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def request(
        self, service: ServiceConfig, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> OriginReply:
        """Send one request to the service's origin, signed; transport and TLS failures raise ``OriginError``."""
        signed = [*headers, ("Grip-Sig", grip_sig(service.grip_key, time.time()))]
        extensions = {}
        if service.origin_host:  # a backend's override host: the Host asked for, and the TLS name verified
            signed.append(("Host", service.origin_host))
            extensions["sni_hostname"] = service.origin_host
        try:
            response = await self._client.request(
                method, service.origin + path, headers=signed, content=body, extensions=extensions
            )
        except httpx.ConnectError as error:
            raise OriginError(_connect_reason(service, error)) from None
        except httpx.TimeoutException:
            raise OriginError(f"origin {service.origin} did not answer in time") from None
        except httpx.HTTPError as error:
            raise OriginError(f"origin {service.origin} failed: {error}") from None
        return OriginReply(
            response.status_code, response.reason_phrase, tuple(response.headers.multi_items()), response.content
        )


def _connect_reason(service: ServiceConfig, error: httpx.ConnectError) -> str:
    text = str(error)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return (
            f"origin {service.origin} presented a TLS certificate that does not chain to a public CA "
            "(self-signed or private CA certificates are refused)"
        )
    return f"cannot connect to origin {service.origin}: {text or type(error).__name__}"
