"""Real TLS origins on loopback for tests: a self-signed one, and one signed by a test CA.

Certificates are made with the ``openssl`` command line; the server is Python's ``ssl`` module in
a thread, accepting handshakes until the test is done.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
LEAF_EXTENSIONS = """\
subjectAltName=IP:127.0.0.1
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
"""


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def self_signed(folder: Path) -> CertPair:
    """A certificate for 127.0.0.1 that signs itself: no public CA vouches for it."""
    pair = CertPair(folder / "self.pem", folder / "self.key")
    _openssl(
        "req", "-x509", *EC_KEY, "-keyout", pair.key, "-out", pair.cert, "-days", "2",
        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
    )  # fmt: skip
    return pair


def ca_signed(folder: Path) -> tuple[Path, CertPair]:
    """A test CA's certificate, and a certificate for 127.0.0.1 that the CA signed."""
    ca = CertPair(folder / "ca.pem", folder / "ca.key")
    _openssl(
        "req", "-x509", *EC_KEY, "-keyout", ca.key, "-out", ca.cert, "-days", "2", "-subj", "/CN=fanmeter test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    leaf = CertPair(folder / "leaf.pem", folder / "leaf.key")
    csr, extensions = folder / "leaf.csr", folder / "leaf.ext"
    extensions.write_text(LEAF_EXTENSIONS)
    _openssl("req", "-new", *EC_KEY, "-keyout", leaf.key, "-out", csr, "-subj", "/CN=127.0.0.1")
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial", "-out", leaf.cert,
        "-days", "2", "-extfile", extensions,
    )  # fmt: skip
    return ca.cert, leaf


class TlsOrigin:
    """A TLS server on 127.0.0.1 that completes handshakes (or fails them) and counts them."""

    def __init__(self, pair: CertPair) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(pair.cert, pair.key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port: int = self.listener.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:  # the accept timeout, or the listener closed
                continue
            self.connections += 1
            with conn:
                conn.settimeout(2)
                try:
                    with self.context.wrap_socket(conn, server_side=True):
                        pass
                except OSError:  # the client refused our certificate, as it should for a self-signed one
                    pass


@contextmanager
def serving(pair: CertPair) -> Iterator[TlsOrigin]:
    """Serve TLS with ``pair`` on a loopback port for the duration of the block."""
    origin = TlsOrigin(pair)
    origin._thread.start()
    try:
        yield origin
    finally:
        origin._stop.set()
        origin._thread.join(timeout=5)
        origin.listener.close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
