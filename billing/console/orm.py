"""The console's one table: sign-in links and browser sessions, each kept only as a SHA-256.

A row is either a one-time sign-in ``link`` (used once, then ``ended_at`` is set) or a browser
``session``. Both stand for an API token: when the token is revoked or its person removed, the
lookup finds no principal and the row is worth nothing, whatever its expiry.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from billing.orm import StatementRecord
from kernel.db import Base, UtcDateTime

ID = 64


class ConsoleSession(Base):
    """A one-time sign-in link or a browser session of the console."""

    __tablename__ = "console_session"

    secret_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # "link" | "session"
    # No foreign key: test and admin clean-ups delete tokens without knowing this table.
    token_id: Mapped[str] = mapped_column(String(ID), index=True)
    # The form token of the session (CSRF); empty for links.
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # A session's one-time reveal: a token secret or sign-in link just issued, kept for one view
    # of the page a POST redirects to, encrypted under the session's cookie secret (which only
    # the browser holds), so the database alone never reveals it. NULL once seen.
    reveal: Mapped[str | None] = mapped_column(Text)


# The month's statements page reads every account's row of one month (status, number, and the
# instants its cached totals are keyed on): an index by month that covers them on PostgreSQL
# spares reading each statement's body pages. Declared here, beside the page that needs it.
MONTH_INDEX = Index(
    "ix_statement_month_account",
    StatementRecord.month,
    StatementRecord.account_id,
    postgresql_include=["status", "number", "generated_at", "finalized_at"],
)
