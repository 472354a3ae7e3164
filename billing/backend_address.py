"""The admin service's side of the backend address rule (``kernel.network_policy``): resolve, then judge.

A backend's host name is resolved once, with a timeout, and every address it gives is judged; the
configuration-time TLS check then connects to the address judged, never to a second resolution
(so a name cannot pass as public and be reached as 127.0.0.1). A name that does not resolve now
is accepted (origins are often configured before their DNS); the broker judges again at connect
time, after its own resolution, and refuses there.
"""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from kernel.network_policy import AllowedNetworks, resolution_refusal

# getaddrinfo has no timeout of its own: it runs here, and a slow answer counts as no answer.
_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="backend-dns")


def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def resolve(host: str, port: int, timeout_seconds: float) -> list[str]:
    """The addresses ``host`` resolves to, or [] when it does not resolve within the timeout."""
    future = _resolver.submit(_getaddrinfo, host, port)
    try:
        return future.result(timeout=timeout_seconds)
    except (OSError, UnicodeError, FutureTimeout):
        return []


def judge(host: str, port: int, allowed: AllowedNetworks, timeout_seconds: float) -> tuple[str | None, list[str]]:
    """Why a backend at ``host`` is refused (or None) and the addresses it was judged on."""
    return resolution_refusal(host, allowed, lambda name: resolve(name, port, timeout_seconds))
