"""The configuration-time TLS check of a backend: connect, verify against the public CA bundle, report.

This is the one place the admin service opens a socket to an origin. The verdict is a string the
pure rules in ``billing.domain.fanout_rules`` understand: ``verified``, ``untrusted`` (reached, but
the certificate failed verification, e.g. self-signed) or ``unverified`` (not reachable in time;
the broker verifies again at connect time and refuses there).
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

import certifi

from billing.domain.fanout_rules import TLS_UNTRUSTED, TLS_UNVERIFIED, TLS_VERIFIED

DEFAULT_TLS_PORT = 443


@dataclass(frozen=True, slots=True)
class TlsCheck:
    """The outcome of one check, with the reason a person can act on."""

    status: str
    detail: str = ""


def check_tls(
    host: str, port: int, *, timeout: float, cafile: str | None = None, server_name: str | None = None
) -> TlsCheck:
    """Connect to ``host:port`` and verify its certificate chain against ``cafile`` and its name.

    ``cafile`` defaults to certifi's public CA bundle, the set of authorities Fanout accepts;
    ``server_name`` (SNI and the name checked) defaults to ``host``.
    """
    context = ssl.create_default_context(cafile=cafile or certifi.where())
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=server_name or host),
        ):
            pass
    except ssl.SSLCertVerificationError as error:
        return TlsCheck(TLS_UNTRUSTED, error.verify_message or str(error))
    except OSError as error:  # refused, timed out, no route, DNS, or a TLS failure other than the certificate
        return TlsCheck(TLS_UNVERIFIED, str(error) or type(error).__name__)
    return TlsCheck(TLS_VERIFIED)
