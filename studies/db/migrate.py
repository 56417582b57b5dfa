"""Bring a study database to the newest schema with Alembic (no alembic.ini needed)."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    """Return an Alembic configuration whose scripts live inside this package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


@functools.cache
def head_revision() -> str | None:
    """Return the newest migration revision (read once per process)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """Return the revision the database is at (None for a database without Alembic's table)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Apply every migration the database lacks, in one transaction."""
    head = head_revision()
    with engine.begin() as connection:
        if current_revision(connection) == head:
            return
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
