"""CSV that a spreadsheet opens as data, never as formulas (OWASP "CSV Injection").

A cell whose text starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula
to Excel, LibreOffice and Google Sheets (``=HYPERLINK(...)``, ``@SUM(...)``, DDE payloads). Such a
cell is written with a single quote in front, and quoted: ``=1+2`` becomes ``"'=1+2"``. A plain
number keeps its sign (``-12.50`` is a credit, not a formula), so finance's sums still work.

``writer(out)`` is a drop-in for ``csv.writer(out, lineterminator="\\n")``: every CSV the admin
service and the CLI export (usage.csv, statement CSVs) goes through it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Protocol

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?[0-9]+(\.[0-9]+)?$")
_NEEDS_QUOTES = frozenset(',"\n\r')


class _Writable(Protocol):
    def write(self, text: str, /) -> Any: ...


def cell(value: Any) -> str:
    """One cell's CSV text: neutralised and quoted when it could be read as a formula."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_STARTS) and not _NUMBER.match(text):
        return '"' + ("'" + text).replace('"', '""') + '"'
    if any(char in _NEEDS_QUOTES for char in text):
        return '"' + text.replace('"', '""') + '"'
    return text


class SafeWriter:
    """Writes rows as ``csv.writer`` does (comma, minimal quoting, ``\\n`` lines), every cell through ``cell``."""

    def __init__(self, out: _Writable) -> None:
        self._out = out

    def writerow(self, row: Iterable[Any]) -> None:
        self._out.write(",".join(cell(value) for value in row) + "\n")

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(out: _Writable) -> SafeWriter:
    return SafeWriter(out)
