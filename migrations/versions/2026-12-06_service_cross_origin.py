"""service.cross_origin: the per-service automatic CORS option (Pushpin's auto_cross_origin)

With it on, the broker adds Pushpin's CORS headers to every HTTP answer of the service, so a page
on another origin can hold an SSE stream or a long-poll. Off for every existing service.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("service", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cross_origin", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("service", schema=None) as batch_op:
        batch_op.drop_column("cross_origin")
