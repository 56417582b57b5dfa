"""``study create``: protocol + CASES.csv -> a study database and its blinded image folder.

Creation is atomic. Everything is built under temporary names next to the database (a hidden
``.<name>.tmp-*`` database and ``.<stem>_images.tmp-*`` folder) and moved into place at the very
end, images first, then the database (the database's presence means the study is complete). Any
error removes the temporaries; an existing database or image folder is never touched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy.orm import Session

from studies.api import DEFAULT_SERIES_LABEL
from studies.cases import CaseRow, load_cases
from studies.clock import Clock, system_clock, utc_now
from studies.db.engine import check_local_filesystem, is_url, make_engine
from studies.db.migrate import upgrade
from studies.db.populate import SeriesCopy, opaque_id, write_study
from studies.deidentify import blind_series
from studies.dicom_series import SeriesInfo, read_series
from studies.errors import StudyError
from studies.leak_scan import Leak, scan_for_leaks
from studies.progress import ProgressCallback, no_progress
from studies.protocol import Protocol, load_protocol
from studies.randomisation import ALGORITHM_VERSION, generate_assignments

#: How many leaks the error message lists (the rest are counted).
LEAKS_SHOWN = 10


@dataclass(frozen=True)
class StudySummary:
    """What ``create_study`` made."""

    db_path: Path
    images_dir: Path
    study_id: str
    title: str
    design: str
    n_cases: int
    n_series: int
    n_slices: int
    n_readers: int
    n_assignments: int
    n_leaks_allowed: int
    seed: int
    algorithm_version: str


def images_dir_for(db_path: Path) -> Path:
    """The image folder of a study database: ``<db stem>_images`` next to it."""
    return db_path.parent / f"{db_path.stem}_images"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _check_target(db_path: Path, images: Path) -> None:
    if db_path.exists():
        raise StudyError(f"{db_path}: already exists; a study database is never overwritten")
    if images.exists():
        raise StudyError(
            f"{images}: image folder already exists (left from another study?); "
            "move it away or choose another database name"
        )
    if not db_path.parent.is_dir():
        raise StudyError(f"{db_path.parent}: folder not found (for the study database)")


def _read_all(
    cases_csv: Path, rows: list[CaseRow], progress: ProgressCallback, total: int
) -> dict[tuple[str, str, str], SeriesInfo]:
    infos: dict[tuple[str, str, str], SeriesInfo] = {}
    for i, row in enumerate(rows):
        progress(i, total, f"reading {_unit(row)} / {row.arm}")
        try:
            infos[row.key] = read_series(row.series_dir)
        except StudyError as exc:
            raise StudyError(
                f"{cases_csv}, line {row.line}, case {_unit(row)}, arm {row.arm}: {exc}"
            ) from None
    return infos


def _unit(row: CaseRow) -> str:
    """A case's series as messages name it: ``C01`` (one series) or ``C01/cor_pd``."""
    return row.case_id if row.series == DEFAULT_SERIES_LABEL else f"{row.case_id}/{row.series}"


def leak_report(leaks: list[Leak]) -> str:
    """Leaks as one line: the first :data:`LEAKS_SHOWN` and a count of the rest."""
    shown = "; ".join(str(leak) for leak in leaks[:LEAKS_SHOWN])
    more = len(leaks) - LEAKS_SHOWN
    return shown + (f"; ... and {more} more" if more > 0 else "")


def create_study(
    protocol_path: Path | str,
    cases_csv: Path | str,
    db_path: Path | str,
    *,
    allow_leak: str | None = None,
    progress: ProgressCallback = no_progress,
    clock: Clock = system_clock,
) -> StudySummary:
    """Create a blinded study: copy, de-identify and scan the series, store the assignments.

    Parameters
    ----------
    protocol_path
        The protocol TOML file.
    cases_csv
        CASES.csv (``case_id,subject_id,arm,series_dir`` + optional ``sequence``, ``truth_*``).
    db_path
        The study database to create (must not exist); images go to ``<stem>_images/``.
    allow_leak
        Create the study although the leak scan found something; the reason is logged in the
        event chain together with the leaks.
    progress
        ``progress(done, total, message)``.
    clock
        The time the study records as its creation (see :mod:`studies.clock`).

    Returns
    -------
    StudySummary

    Raises
    ------
    StudyError
        Bad protocol, CASES.csv or DICOM; a leak (unless ``allow_leak``); an existing database
        or image folder; a database on a network file system. Nothing is left behind.
    """
    if is_url(db_path):
        raise StudyError(
            f"{db_path}: study create writes a SQLite file; create the study locally, then "
            "copy it to the server with `blindreader study copy --db STUDY.sqlite --to URL`"
        )
    db_path = Path(db_path)
    images = images_dir_for(db_path)
    _check_target(db_path, images)
    check_local_filesystem(db_path)
    if allow_leak is not None and not allow_leak.strip():
        raise StudyError("--allow-leak needs a reason (it is logged with the study)")
    protocol_path = Path(protocol_path)
    cases_csv = Path(cases_csv)
    protocol = load_protocol(protocol_path)
    protocol_text = protocol_path.read_text(encoding="utf-8")
    rows = load_cases(cases_csv, protocol)
    planned = generate_assignments(protocol, rows, protocol.seed)

    total = 2 * len(rows) + 2
    infos = _read_all(cases_csv, rows, progress, total)

    token = secrets.token_hex(4)
    tmp_db = db_path.parent / f".{db_path.name}.tmp-{token}"
    tmp_images = db_path.parent / f".{images.name}.tmp-{token}"
    moved_images = False
    try:
        taken: set[str] = set()
        subject_ids: dict[str, str] = {}
        copies: dict[tuple[str, str, str], SeriesCopy] = {}
        blinded: dict[tuple[str, str, str], SeriesInfo] = {}
        uid_map: dict[str, str] = {}
        for i, row in enumerate(rows):
            progress(len(rows) + i, total, f"blinding {_unit(row)} / {row.arm}")
            if row.subject_id not in subject_ids:
                subject_ids[row.subject_id] = opaque_id("p", taken)
            sid = opaque_id("s", taken)
            source = infos[row.key]
            written = blind_series(
                source,
                tmp_images / sid,
                opaque_series_id=sid,
                opaque_patient_id=subject_ids[row.subject_id],
                uid_map=uid_map,
            )
            # Same geometry, new place: the leak scan reads the copies' headers itself.
            blinded[row.key] = replace(source, folder=tmp_images / sid, files=tuple(written))
            copies[row.key] = SeriesCopy(sid, sid, source.n_slices)

        progress(2 * len(rows), total, "scanning for arm leaks")
        leaks = _scan(rows, infos, blinded, protocol)
        if leaks and allow_leak is None:
            raise StudyError(
                f"{len(leaks)} possible arm leak(s) in the blinded series; nothing was created "
                f"(fix the series, or pass --allow-leak REASON to create anyway): "
                + leak_report(leaks)
            )
        extra: list[tuple[str, dict[str, object]]] = []
        if leaks:
            extra.append(
                (
                    "leak_allowed",
                    {"reason": allow_leak, "n_leaks": len(leaks), "leaks": [str(x) for x in leaks]},
                )
            )

        progress(2 * len(rows) + 1, total, "writing the study database")
        engine = make_engine(tmp_db, check_filesystem=False)
        try:
            upgrade(engine)
            with Session(engine) as s, s.begin():
                study = write_study(
                    s,
                    protocol=protocol,
                    protocol_toml=protocol_text,
                    cases=rows,
                    planned=planned,
                    series=copies,
                    images_dir=images.name,
                    algorithm_version=ALGORITHM_VERSION,
                    created_at=utc_now(clock),
                    extra_events=extra,
                    subject_opaque_ids=subject_ids,
                )
                study_id = study.id
        finally:
            engine.dispose()
        # One self-contained file (no -wal beside it) to move into place; Store.open turns
        # WAL back on.
        con = sqlite3.connect(tmp_db, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=DELETE")
        finally:
            con.close()

        os.rename(tmp_images, images)
        moved_images = True
        # link() refuses an existing target: a database made meanwhile is never replaced.
        try:
            os.link(tmp_db, db_path)
        except FileExistsError:
            raise StudyError(
                f"{db_path}: already exists; a study database is never overwritten"
            ) from None
        _remove(tmp_db)
        _fsync_dir(db_path.parent)
    except BaseException:
        for path in (tmp_db, Path(f"{tmp_db}-wal"), Path(f"{tmp_db}-shm"), tmp_images):
            _remove(path)
        if moved_images:
            _remove(images)
        raise
    progress(total, total, "done")
    return StudySummary(
        db_path=db_path,
        images_dir=images,
        study_id=study_id,
        title=protocol.title,
        design=protocol.design,
        n_cases=len({r.case_id for r in rows}),
        n_series=len(rows),
        n_slices=sum(c.n_slices for c in copies.values()),
        n_readers=len(protocol.readers),
        n_assignments=len(planned),
        n_leaks_allowed=len(leaks),
        seed=protocol.seed,
        algorithm_version=ALGORITHM_VERSION,
    )


def _scan(
    rows: list[CaseRow],
    sources: Mapping[tuple[str, str, str], SeriesInfo],
    blinded: Mapping[tuple[str, str, str], SeriesInfo],
    protocol: Protocol,
) -> list[Leak]:
    """Scan the blinded copies, each series of a case across its arms; report each leak at the
    source file it was copied from."""
    units = list(dict.fromkeys((r.case_id, r.series) for r in rows))
    case_ids = [_unit(next(r for r in rows if (r.case_id, r.series) == u)) for u in units]
    series = {
        arm: [blinded[(case, arm, label)] for case, label in units] for arm in protocol.arm_codes
    }
    origin: dict[str, str] = {}
    for key, copy in blinded.items():
        source = sources[key]
        origin[str(copy.folder)] = str(source.folder)
        origin.update(zip(map(str, copy.files), map(str, source.files), strict=False))
    leaks = scan_for_leaks(series, protocol, case_ids=case_ids)
    return [replace(leak, file=origin.get(leak.file, leak.file)) for leak in leaks]


def _fsync_dir(folder: Path) -> None:
    """Make the renames durable (the directory entry itself)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
