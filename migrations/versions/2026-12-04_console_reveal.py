"""console_session.reveal: a token or sign-in link just issued, kept sealed for one view

The console answers "New token" with a redirect (POST-redirect-GET); the page it leads to shows
the new secret once, read from the session's row and cleared. The value is sealed under the
session's cookie secret, which the database never holds.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 20:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("console_session", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reveal", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("console_session", schema=None) as batch_op:
        batch_op.drop_column("reveal")
