"""``Content-Disposition`` for downloads whose file names are built from ids (RFC 6266).

``attachment("statement-acc_1-2026-03.csv")`` gives
``attachment; filename="statement-acc_1-2026-03.csv"; filename*=UTF-8''statement-acc_1-2026-03.csv``.
The ``filename`` fallback keeps only safe ASCII (letters, digits, ``.``, ``_``, ``-``; anything else
becomes ``_``); ``filename*`` carries the exact name, UTF-8 percent-encoded (RFC 8187). So a quote, a
semicolon, CR/LF or a non-ASCII character in an id can neither inject a parameter nor fail the
header's latin-1 encoding with a 500.
"""

from __future__ import annotations

import re
from urllib.parse import quote

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def attachment(filename: str) -> dict[str, str]:
    """The header of a download named ``filename``, as a dict to pass as ``headers``."""
    fallback = _UNSAFE.sub("_", filename) or "download"
    encoded = quote(filename, safe="")
    return {"Content-Disposition": f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"}
