"""Numbers of finalized statements and credit notes: gapless sequences that never reset within a year.

Rules (DESIGN.md "After finalization"; docs/decisions.md gives the reasons):

- **Two sequences.** Statements and credit notes are numbered from sequences of their own, each
  with its own prefix (``FM`` and ``CN`` by default, configurable).
- **Yearly.** The sequence runs within the UTC calendar year of the document's issue (the
  instant a statement is finalized or a credit note issued) and starts again from 000001 on
  1 January. With the yearly reset turned off there is one sequence for ever (period 0).
- **Format.** ``PREFIX-YYYY-NNNNNN``, e.g. ``FM-2026-000123`` and ``CN-2026-000007``; without the
  yearly reset ``PREFIX-NNNNNN``. Six digits at least; a seventh appears after 999,999.
- **Gapless.** The next value is the last one given out in that (sequence, period) plus one, taken
  in the same transaction as the document it numbers: a rolled back finalization gives its number
  back, so no number is skipped, and the counter row's lock means no number is given twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kernel.instants import Month

STATEMENT = "statement"
CREDIT_NOTE = "credit_note"
SEQUENCES = (STATEMENT, CREDIT_NOTE)
NO_RESET = 0  # the period of a sequence that never resets
PREFIX_PATTERN = r"^[A-Z][A-Z0-9]{0,9}$"
_PREFIX = re.compile(PREFIX_PATTERN)


@dataclass(frozen=True, slots=True)
class Numbering:
    """How documents are numbered: a prefix per sequence, and whether sequences restart each year."""

    statement_prefix: str = "FM"
    credit_note_prefix: str = "CN"
    yearly_reset: bool = True

    def __post_init__(self) -> None:
        for prefix in (self.statement_prefix, self.credit_note_prefix):
            if not _PREFIX.match(prefix):
                raise ValueError(f"a number prefix is 1-10 capital letters or digits, from a letter; got {prefix!r}")
        if self.statement_prefix == self.credit_note_prefix:
            raise ValueError("statements and credit notes need different number prefixes")

    def period(self, issued_us: int) -> int:
        """The period a document issued at ``issued_us`` (UTC microseconds) is numbered in.

        Example: issued 2026-12-31T23:59:59Z it is 2026, a microsecond after midnight 2027;
        without the yearly reset it is always 0.
        """
        return Month.of(issued_us).year if self.yearly_reset else NO_RESET

    def prefix(self, sequence: str) -> str:
        """The prefix of ``sequence`` (``STATEMENT`` or ``CREDIT_NOTE``)."""
        if sequence not in SEQUENCES:
            raise ValueError(f"no number sequence {sequence!r}; there are {SEQUENCES}")
        return self.statement_prefix if sequence == STATEMENT else self.credit_note_prefix

    def number(self, sequence: str, period: int, value: int) -> str:
        """The ``value``-th number of ``sequence`` in ``period``.

        Example: ``Numbering().number(STATEMENT, 2026, 123) == "FM-2026-000123"``;
        ``Numbering(yearly_reset=False).number(CREDIT_NOTE, 0, 7) == "CN-000007"``.
        """
        if value < 1:
            raise ValueError(f"a number sequence starts at 1, got {value}")
        head = self.prefix(sequence) if period == NO_RESET else f"{self.prefix(sequence)}-{period:04d}"
        return f"{head}-{value:06d}"
