"""Copy a study database into another (a SQLite study onto a PostgreSQL server, say)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import insert, inspect, select

from studies.clock import Clock, system_clock
from studies.db.engine import make_engine
from studies.db.migrate import upgrade
from studies.db.models import Base, Study
from studies.errors import StudyError


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
                    rows: list[dict[str, Any]] = [
                        dict(r._mapping) for r in src.execute(select(table))
                    ]
                    if table.name == "study":
                        for row in rows:
                            row["images_dir"] = images
                    if rows:
                        dst.execute(insert(table), rows)
                    n += len(rows)
        finally:
            engine.dispose()
    return n
