"""Copy a study database into another (a SQLite study onto a PostgreSQL server, say)."""

from __future__ import annotations

import sqlite3
import urllib.parse
from pathlib import Path
from typing import Any

from sqlalchemy import insert, inspect, select
from sqlalchemy.orm import Session

from studies.clock import Clock, system_clock
from studies.db.engine import is_url, make_engine
from studies.db.migrate import upgrade
from studies.db.models import Base, Study
from studies.errors import StudyError
from studies.record import KEY_INFO, record_rows


def copy_study(source: str | Path, target: str, *, clock: Clock = system_clock) -> int:
    """Copy every row of a study into an empty database, keeping ids and the event chain.

    Parameters
    ----------
    source
        The study to copy (a SQLite file or URL).
    target
        An empty database (URL or SQLite path); its schema is created. The copy's image folder
        is the source's, as an absolute path.
    clock
        The clock the source store is opened with (see :mod:`studies.clock`).

    Returns
    -------
    int
        The number of rows copied.

    Raises
    ------
    StudyError
        The target already holds a study.
    """
    from studies.store import Store

    _refuse_foreign_file(target)
    with Store.open(source, clock=clock) as src_store:
        images = str(src_store.images_dir.resolve())
        engine = make_engine(target)
        try:
            upgrade(engine)
            if "study" in inspect(engine).get_table_names():
                with engine.connect() as con:
                    if con.execute(select(Study.id)).first() is not None:
                        raise StudyError(f"{target}: already holds a study; copy into an empty one")
            n = 0
            with (
                src_store.engine.connect().execution_options(sqlite_begin="DEFERRED") as src,
                engine.begin() as dst,
            ):
                for table in Base.metadata.sorted_tables:
                    if table.name == "schema_release":
                        continue  # the target's own migrations wrote it
                    rows: list[dict[str, Any]] = [
                        dict(r._mapping) for r in src.execute(select(table))
                    ]
                    if table.name == "study":
                        for row in rows:
                            row["images_dir"] = images
                    if rows:
                        dst.execute(insert(table), rows)
                    n += len(rows)
            # The study row now names another image folder: recorded (keyed where the key is).
            with Session(engine) as s, s.begin():
                s.info[KEY_INFO] = src_store.key
                record_rows(s, Study, [src_store.study_id])
        finally:
            engine.dispose()
    return n


def _refuse_foreign_file(target: str) -> None:
    """Never write into an existing SQLite file (copy targets must be empty databases)."""
    path_text = target.split(":///", 1)[1] if target.startswith("sqlite:///") else None
    if path_text is None and not is_url(target):
        path_text = target
    if path_text is None:
        return
    path = Path(path_text)
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return
    tables: set[str] = set()
    if path.is_file():
        uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
        try:
            con = sqlite3.connect(uri, uri=True)
            try:
                tables = {r[0] for r in con.execute("select name from sqlite_master")}
                if "study" in tables and con.execute("select 1 from study").fetchone():
                    raise StudyError(f"{target}: already holds a study; copy into an empty one")
            finally:
                con.close()
        except sqlite3.DatabaseError:
            tables = {"?"}
    raise StudyError(
        f"{path}: already exists and is not an empty study database; copy into a new file "
        "(a file blindreader did not create is never changed)"
    )
