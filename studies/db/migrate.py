"""Bring a study database to the newest schema with Alembic (no alembic.ini needed)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from studies.errors import StudyError

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


@functools.cache
def known_revisions() -> frozenset[str]:
    """Every migration revision this release knows."""
    script = ScriptDirectory.from_config(alembic_config())
    return frozenset(r.revision for r in script.walk_revisions())


def newer_schema_message(
    source: str, revision: str, releases: dict[str, str], created_by: str | None
) -> str:
    """The error for a database whose schema revision this release does not know.

    Parameters
    ----------
    source
        The database (for the message).
    revision
        Its schema revision.
    releases
        ``schema_release`` rows (revision -> blindreader release that applied it).
    created_by
        The blindreader release that created the study, if known.
    """
    from importlib import metadata

    try:
        ours = metadata.version("blindreader")
    except metadata.PackageNotFoundError:  # pragma: no cover
        ours = "unknown"
    if revision in releases:
        writer = f"it was written by blindreader {releases[revision]}"
    elif releases:
        writer = "it was last upgraded by a blindreader newer than " + max(releases.values())
    elif created_by:
        writer = f"the study was created by blindreader {created_by}"
    else:
        writer = "the blindreader release that wrote it is not recorded"
    return (
        f"{source}: the study database has schema version {revision!r}, which this blindreader "
        f"({ours}, schema up to {head_revision()!r}) does not know; {writer}. Open it with that "
        "release or a newer one; nothing was changed"
    )


def current_revision(connection: Connection) -> str | None:
    """Return the revision the database is at (None for a database without Alembic's table)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Apply every migration the database lacks, in one transaction.

    On SQLite, foreign keys are off while the migrations run: a migration that changes a table
    rebuilds it (copy, drop, rename), and dropping a table that other rows refer to would fail
    or cascade. Every reference is checked once they are done; a broken one rolls it all back.

    Raises
    ------
    StudyError
        A migration left a reference to a missing row (nothing of the upgrade is kept).
    """
    head = head_revision()
    with engine.connect() as connection:
        if current_revision(connection) == head:
            return
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        raw: Any = connection.connection.driver_connection
        if sqlite:  # outside a transaction, where SQLite honours it
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                config = alembic_config()
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        table, rowid, parent = broken[0][0], broken[0][1], broken[0][2]
                        raise StudyError(
                            f"the schema upgrade to {head} left {len(broken)} broken "
                            f"reference(s) (first: {table} row {rowid} -> {parent}); nothing "
                            "was changed"
                        )
        finally:
            if sqlite:
                raw.execute("PRAGMA foreign_keys=ON")
