"""The admin service's HTTP protocol: uvicorn's httptools with ``kernel.http_limits`` and the admin's settings.

Uvicorn takes it by name (``fanmeter admin`` serves with ``http="billing.api.server:limited_http"``),
so each server process, ``--workers`` included, builds it from its own settings on its first
connection: heads over ``FANMETER_ADMIN_MAX_HEADER_BYTES`` or ``FANMETER_ADMIN_MAX_HEADERS`` are
431, a head not complete ``FANMETER_ADMIN_HEADER_TIMEOUT_SECONDS`` after it began is 408, and a
body still arriving past ``FANMETER_ADMIN_BODY_TIMEOUT_SECONDS`` ends its connection (the 408 is
``billing.api.body_limit``'s).
"""

from __future__ import annotations

import functools
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from billing.settings import BillingSettings
from kernel.http_limits import HttpLimits, limited_protocol


@functools.cache
def protocol_class() -> type[HttpToolsProtocol]:
    """The limited protocol class for this process's settings (read once)."""
    settings = BillingSettings()
    return limited_protocol(
        HttpLimits(
            max_head_bytes=settings.admin_max_header_bytes,
            max_headers=settings.admin_max_headers,
            head_timeout_s=settings.admin_header_timeout_seconds,
            body_timeout_s=settings.admin_body_timeout_seconds,
        )
    )


def limited_http(*args: Any, **kwargs: Any) -> HttpToolsProtocol:
    """Uvicorn's protocol factory: one limited protocol per connection."""
    return protocol_class()(*args, **kwargs)
