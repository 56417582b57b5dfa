"""Alembic migrations of the study database, applied programmatically at open."""
