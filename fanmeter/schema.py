"""Is the database at the newest schema? Commands refuse to run against an old one."""

from __future__ import annotations

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from fanmeter.migrate import SCRIPT_LOCATION, alembic_config


class SchemaOutOfDate(RuntimeError):
    """The database is missing migrations; ``fanmeter db upgrade`` brings it up to date."""


def require_current_schema(engine: Engine) -> None:
    """Raise SchemaOutOfDate unless the database is at the newest migration."""
    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current != head:
        raise SchemaOutOfDate(
            f"the database {engine.url.render_as_string(hide_password=True)} is at schema "
            f"{current or 'none'}, not {head}: run `fanmeter db upgrade` (migrations in {SCRIPT_LOCATION})"
        )
