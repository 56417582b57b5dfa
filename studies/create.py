"""``study create``: protocol + CASES.csv -> a study database and its blinded image folder.

The steps: read and check every source header (CASES.csv rows, geometry, burned-in annotation);
blind every series, in a pool of worker processes for a large study, decoding each image once:
that one pass writes the blinded copy from the allow-list (:mod:`studies.blinded_dicom`), finds
arm words in the source headers and measures the image statistics; then scan for leaks
(:mod:`studies.leak_scan`), assess whether the statistics tell the arms apart
(:mod:`studies.distinguishability`), write the database and move everything into place.

Creation is atomic. Everything is built under temporary names next to the database (a hidden
``.<name>.tmp-*`` database and ``.<stem>_images.tmp-*`` folder) and moved into place at the very
end, images first, then the database (the database's presence means the study is complete). Any
error removes the temporaries; an existing database or image folder is never touched. One create
at a time holds a target (a lock file ``.<name>.create-lock`` beside it); a create that was
killed cannot clean up, so the next create on the same target removes what it left.

The blinded folders are written in a random order and given one neutral modification time, so
neither the file system's times nor its inode order follow CASES.csv (and with it the arms).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sqlite3
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from studies.api import DEFAULT_SERIES_LABEL
from studies.blinded_dicom import BlindedIdentity, new_uid
from studies.blinding_job import BlindedResult, BlindingJob, run_blinding, worker_count
from studies.cases import CaseRow, load_cases
from studies.clock import Clock, system_clock, utc_now
from studies.db.engine import check_local_filesystem, is_url, make_engine
from studies.db.migrate import upgrade
from studies.db.populate import SeriesCopy, opaque_id, write_study
from studies.dicom_series import SeriesInfo, read_series
from studies.distinguishability import (
    EVENT_KIND,
    Distinguishability,
    SeriesStatistics,
    assess_study,
    event_payload,
)
from studies.errors import StudyError
from studies.image_digests import file_digests
from studies.leak_scan import (
    Leak,
    Term,
    compare_grey_levels,
    scan_for_leaks,
    source_text_leaks,
    text_terms,
)
from studies.progress import ProgressCallback, no_progress
from studies.protocol import Protocol, load_protocol
from studies.randomisation import ALGORITHM_VERSION, generate_assignments
from studies.record import KEY_INFO, head
from studies.study_key import key_path, new_key, save_key

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
    n_burned_in_allowed: int = 0
    distinguishability: tuple[Distinguishability, ...] = field(default=())
    key_path: Path | None = None  # the study key (studies.study_key): back it up


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


def burned_in_report(items: Sequence[str]) -> str:
    """Burned-in findings as one line: the first :data:`LEAKS_SHOWN` and a count of the rest."""
    shown = "; ".join(items[:LEAKS_SHOWN])
    more = len(items) - LEAKS_SHOWN
    return shown + (f"; ... and {more} more" if more > 0 else "")


def create_study(
    protocol_path: Path | str,
    cases_csv: Path | str,
    db_path: Path | str,
    *,
    allow_leak: str | None = None,
    allow_burned_in: str | None = None,
    workers: int | None = None,
    progress: ProgressCallback = no_progress,
    clock: Clock = system_clock,
    key_dir: Path | None = None,
) -> StudySummary:
    """Create a blinded study: check, blind and scan the series, store the assignments.

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
    allow_burned_in
        Create the study although some series declare burned-in annotation (or are Secondary
        Capture images that do not rule it out); the reason is logged with the series.
    workers
        Worker processes for blinding (default: one per CPU for a large study, see
        :func:`worker_count`).
    progress
        ``progress(done, total, message)``.
    clock
        The time the study records as its creation (see :mod:`studies.clock`).
    key_dir
        Where the new study key file goes (default :func:`studies.study_key.key_dir`).

    Returns
    -------
    StudySummary
        With the distinguishability report (also stored in the study as an event).

    Raises
    ------
    StudyError
        Bad protocol or CASES.csv (one series folder on two rows included); a series that
        cannot be read or decoded (one line naming the file); burned-in annotation (unless
        ``allow_burned_in``); a leak (unless ``allow_leak``); an existing database or image
        folder; another create running on the same target; a database on a network file
        system. Nothing is left behind.
    """
    if is_url(db_path):
        raise StudyError(
            f"{db_path}: study create writes a SQLite file; create the study locally, then "
            "copy it to the server with `blindreader study copy --db STUDY.sqlite --to URL`"
        )
    db_path = Path(db_path)
    images = images_dir_for(db_path)
    for option, reason in (("--allow-leak", allow_leak), ("--allow-burned-in", allow_burned_in)):
        if reason is not None and not reason.strip():
            raise StudyError(f"{option} needs a reason (it is logged with the study)")
    if not db_path.parent.is_dir():
        raise StudyError(f"{db_path.parent}: folder not found (for the study database)")
    with target_lock(db_path):
        _check_target(db_path, images)
        check_local_filesystem(db_path)
        removed = remove_leftovers(db_path)
        if removed:
            progress(0, 1, f"removed {len(removed)} leftover(s) of an interrupted create")
        return _create(
            Path(protocol_path),
            Path(cases_csv),
            db_path,
            images,
            allow_leak=allow_leak,
            allow_burned_in=allow_burned_in,
            workers=workers,
            progress=progress,
            clock=clock,
            key_dir=key_dir,
        )


def _create(
    protocol_path: Path,
    cases_csv: Path,
    db_path: Path,
    images: Path,
    *,
    allow_leak: str | None,
    allow_burned_in: str | None,
    workers: int | None,
    progress: ProgressCallback,
    clock: Clock,
    key_dir: Path | None,
) -> StudySummary:
    protocol = load_protocol(protocol_path)
    protocol_text = protocol_path.read_text(encoding="utf-8")
    rows = load_cases(cases_csv, protocol)
    planned = generate_assignments(protocol, rows, protocol.seed)

    total = 2 * len(rows) + 3
    infos = _read_all(cases_csv, rows, progress, total)
    burned = [
        f"{cases_csv}, line {row.line}, case {_unit(row)}, arm {row.arm}: {info.burned_in}"
        for row in rows
        if (info := infos[row.key]).burned_in
    ]
    if burned and allow_burned_in is None:
        raise StudyError(
            f"{len(burned)} series may carry burned-in text; nothing was created (check the "
            "images, then pass --allow-burned-in REASON to create anyway): "
            + burned_in_report(burned)
        )

    token = secrets.token_hex(4)
    tmp_db = db_path.parent / f".{db_path.name}{_TMP}{token}"
    tmp_images = db_path.parent / f".{images.name}{_TMP}{token}"
    moved_images = False
    key = new_key()
    saved_key: Path | None = None
    try:
        jobs, subject_ids = _plan_jobs(cases_csv, rows, infos, tmp_images, protocol_terms(protocol))
        n_images = sum(len(job.files) for job in jobs)
        results = run_blinding(
            jobs, worker_count(workers, len(jobs), n_images), progress, len(rows), total
        )
        by_key = {r.key: r for r in results}
        job_of = {j.key: j for j in jobs}
        copies = {
            key: SeriesCopy(
                job.identity.series_id,
                job.identity.series_id,
                len(job.files),
                file_digests([f.name for f in by_key[key].files], by_key[key].digests),
            )
            for key, job in job_of.items()
        }

        progress(2 * len(rows), total, "scanning for arm leaks")
        leaks = _scan(rows, infos, by_key, job_of, protocol.arm_codes)
        if leaks and allow_leak is None:
            raise StudyError(
                f"{len(leaks)} possible arm leak(s); nothing was created "
                f"(fix the series, or pass --allow-leak REASON to create anyway): "
                + leak_report(leaks)
            )

        progress(2 * len(rows) + 1, total, "can image statistics tell the arms apart?")
        # One comparison unit per series of a case (a knee exam's sequences differ in look):
        # arms are compared, and cross-validated, series by series.
        units = {r.key: _unit(r) for r in rows}
        statistics = [SeriesStatistics(units[r.key], r.arm, r.features) for r in results]
        report = tuple(assess_study(statistics, protocol))

        extra: list[tuple[str, dict[str, object]]] = []
        if leaks:
            extra.append(
                (
                    "leak_allowed",
                    {"reason": allow_leak, "n_leaks": len(leaks), "leaks": [str(x) for x in leaks]},
                )
            )
        if burned:
            extra.append(
                (
                    "burned_in_allowed",
                    {"reason": allow_burned_in, "n_series": len(burned), "series": burned},
                )
            )
        extra.append((EVENT_KIND, event_payload(report)))

        progress(2 * len(rows) + 2, total, "writing the study database")
        created_at = utc_now(clock)
        engine = make_engine(tmp_db, check_filesystem=False)
        try:
            upgrade(engine)
            with Session(engine) as s, s.begin():
                s.info[KEY_INFO] = key
                study = write_study(
                    s,
                    protocol=protocol,
                    protocol_toml=protocol_text,
                    cases=rows,
                    planned=planned,
                    series=copies,
                    images_dir=images.name,
                    algorithm_version=ALGORITHM_VERSION,
                    created_at=created_at,
                    extra_events=extra,
                    subject_opaque_ids=subject_ids,
                )
                study_id = study.id
                created = head(s)
        finally:
            engine.dispose()
        # The key file goes first: a study is never in place without its key.
        created_at = utc_now(clock)
        saved_key = key_path(study_id, key_dir)
        save_key(
            key,
            study_id,
            saved_key,
            details={
                "title": protocol.title,
                "database": str(db_path.resolve()),
                "created_at": created_at.isoformat(),
                "anchor": None
                if created is None
                else {"seq": created.seq, "hash": created.hash, "at": created_at.isoformat()},
            },
        )
        # One self-contained file (no -wal beside it) to move into place; Store.open turns
        # WAL back on.
        con = sqlite3.connect(tmp_db, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=DELETE")
        finally:
            con.close()

        neutral_times(tmp_images, created_at)
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
        if saved_key is not None:
            _remove(saved_key)
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
        n_burned_in_allowed=len(burned),
        distinguishability=report,
        key_path=saved_key,
    )


def protocol_terms(protocol: Protocol) -> tuple[Term, ...]:
    """The source-text terms of a protocol, as a tuple (it travels to the workers)."""
    return tuple(text_terms(protocol))


def _plan_jobs(
    cases_csv: Path,
    rows: Sequence[CaseRow],
    infos: Mapping[tuple[str, str, str], SeriesInfo],
    tmp_images: Path,
    terms: tuple[Term, ...],
) -> tuple[list[BlindingJob], dict[str, str]]:
    """One job per row, in a random order; opaque ids for subjects, exams and series.

    Each arm of a case is its own exam in the blinded headers (own patient id, study UID and
    frame-of-reference salt), so nothing in them links the arms of a case or the cases of one
    subject; the subject's opaque id is kept for the database only.
    """
    taken: set[str] = set()
    subject_ids: dict[str, str] = {}
    exams: dict[tuple[str, str], tuple[str, str, str]] = {}
    jobs: list[BlindingJob] = []
    # one SOP class for every arm of a case's series: orientation only when every arm has it
    unit_oriented: dict[tuple[str, str], bool] = {}
    for row in rows:
        unit = (row.case_id, row.series)
        unit_oriented[unit] = unit_oriented.get(unit, True) and infos[row.key].oriented
    for row in rows:
        if row.subject_id not in subject_ids:
            subject_ids[row.subject_id] = opaque_id("p", taken)
        key = (row.case_id, row.arm)
        if key not in exams:
            exams[key] = (opaque_id("p", taken), str(new_uid()), secrets.token_hex(16))
        patient_id, study_uid, salt = exams[key]
        sid = opaque_id("s", taken)
        jobs.append(
            BlindingJob(
                case_id=row.case_id,
                arm=row.arm,
                series=row.series,
                where=f"{cases_csv}, line {row.line}, case {_unit(row)}, arm {row.arm}",
                files=infos[row.key].files,
                out_dir=tmp_images / sid,
                identity=BlindedIdentity(patient_id, study_uid, sid, salt),
                terms=terms,
                oriented=unit_oriented[(row.case_id, row.series)],
            )
        )
    # Not the seeded generator on purpose: knowing the seed must not reveal the arms.
    secrets.SystemRandom().shuffle(jobs)
    return jobs, subject_ids


def _scan(
    rows: Sequence[CaseRow],
    sources: Mapping[tuple[str, str, str], SeriesInfo],
    results: Mapping[tuple[str, str, str], BlindedResult],
    jobs: Mapping[tuple[str, str, str], BlindingJob],
    arm_codes: Sequence[str],
) -> list[Leak]:
    """Every leak, each series of a case across its arms; blinded files are reported at the
    source file they came from."""
    origin: dict[str, str] = {}
    for key, job in jobs.items():
        origin[str(job.out_dir)] = str(sources[key].folder)
        origin.update(zip(map(str, results[key].files), map(str, job.files), strict=True))
    leaks: list[Leak] = []
    units = {(r.case_id, r.series): _unit(r) for r in rows}
    for (case, series), unit in units.items():
        arms = [a for a in arm_codes if (case, a, series) in results]
        of = {a: results[(case, a, series)] for a in arms}
        leaks += source_text_leaks(unit, {a: of[a].source_hits for a in arms})
        found = scan_for_leaks({a: [list(of[a].headers)] for a in arms}, case_ids=[unit])
        leaks += [replace(x, file=origin.get(x.file, x.file)) for x in found]
        label = str(sources[(case, arms[-1], series)].folder) if arms else ""
        leaks += compare_grey_levels(unit, {a: of[a].grey_levels for a in arms}, label)
    return leaks


_TMP = ".tmp-"


def remove_leftovers(db_path: Path) -> list[Path]:
    """Remove what an interrupted create on this target left: the hidden temporary database
    (with its -wal / -shm) and image folder. Call only while holding :func:`target_lock`."""
    prefixes = (f".{db_path.name}{_TMP}", f".{images_dir_for(db_path).name}{_TMP}")
    removed = []
    for path in db_path.parent.iterdir():
        if path.name.startswith(prefixes):
            _remove(path)
            removed.append(path)
    return removed


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


@contextlib.contextmanager
def target_lock(db_path: Path) -> Iterator[None]:
    """Hold the create lock of ``db_path`` (``.<name>.create-lock`` beside it).

    The operating system drops the lock when the process dies, so a killed create never
    blocks the next one.

    Raises
    ------
    StudyError
        Another create holds the lock.
    """
    lock = db_path.parent / f".{db_path.name}.create-lock"
    for _attempt in range(3):
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StudyError(f"{lock}: cannot create the create lock ({exc.strerror})") from None
        if not _try_lock(fd):
            os.close(fd)
            raise StudyError(
                f"{db_path}: another `study create` is making this study right now "
                f"(it holds {lock.name}); wait for it to finish"
            )
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the file was removed by a create that just finished: take the new one
    else:
        raise StudyError(f"{db_path}: cannot take the create lock {lock.name}")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
        os.close(fd)


def neutral_times(folder: Path, when: datetime) -> None:
    """Give every file and folder below ``folder`` (and itself) the same access and
    modification time, so their times say nothing about the order they were written in."""
    stamp = when.timestamp()
    for root, dirs, files in os.walk(folder, topdown=False):
        for name in files:
            os.utime(Path(root) / name, (stamp, stamp))
        for name in dirs:
            os.utime(Path(root) / name, (stamp, stamp))
    os.utime(folder, (stamp, stamp))


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
