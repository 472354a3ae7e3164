"""Alembic migrations: the one way fanmeter's schema changes."""
