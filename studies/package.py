"""Reading packages for workstations: ``pack_reader`` and ``merge_packages``.

A package is a folder with ``study.sqlite`` (a fresh database holding the study, its protocol and
only one reader: their sessions, assignments, earlier answers and events; no truth, and cases and
subjects named by their opaque ids only),
``study_images/`` (the series that reader's assignments show) and ``manifest.json`` (study id,
protocol sha256, reader, and the sha256 of every image file). The reader answers in the package
with the viewer; ``merge_packages`` brings the answers, revisions and events back.

Merging is idempotent: rows are matched by their UUIDs, so a second merge of the same package
imports nothing. An answer whose revision history in the package does not extend the one in the
study (or the other way round) is a conflict: it is reported and left as it is, never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.orm import Session

from studies.api import AnswerKey
from studies.clock import Clock, system_clock
from studies.db.engine import make_engine
from studies.db.migrate import upgrade
from studies.db.models import (
    Answer,
    AnswerRevision,
    Arm,
    Assignment,
    Case,
    Event,
    Finding,
    MergeLog,
    Question,
    Reader,
    ReadingSession,
    Series,
    Study,
    Subject,
)
from studies.errors import StudyError
from studies.events import append_event
from studies.progress import ProgressCallback, no_progress
from studies.store import Store

PACKAGE_FORMAT = "blindreader-package/1"
MANIFEST = "manifest.json"
PACKAGE_DB = "study.sqlite"
PACKAGE_IMAGES = "study_images"


@dataclass(frozen=True)
class Conflict:
    """One answer whose history differs between the study and a package (left unchanged)."""

    reader_id: str
    session_index: int
    position: int
    assignment_id: str
    key: AnswerKey
    study_values: tuple[str, ...]  # JSON values, oldest revision first
    package_values: tuple[str, ...]

    def __str__(self) -> str:
        where = f"reader {self.reader_id}, session {self.session_index}, case {self.position}"
        what = self.key.question_id
        if self.key.finding_id:
            what += f"[finding={self.key.finding_id}]"
        if self.key.side:
            what += f"[side={self.key.side}]"
        return (
            f"{where}, {what}: study has {' -> '.join(self.study_values)}, package has "
            f"{' -> '.join(self.package_values)}"
        )


@dataclass
class PackageMerge:
    """What one package brought."""

    package: Path
    reader_id: str
    n_answers: int = 0  # answers new to the study
    n_revisions: int = 0  # revisions added (new answers' included)
    n_events: int = 0
    n_completed: int = 0  # assignments newly marked completed
    conflicts: list[Conflict] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether the merge imported anything."""
        return bool(self.n_revisions or self.n_events or self.n_completed)


@dataclass
class MergeReport:
    """The result of ``merge_packages``: one entry per package, in the order given."""

    packages: list[PackageMerge] = field(default_factory=list)

    @property
    def conflicts(self) -> list[Conflict]:
        """Every conflict of every package."""
        return [c for p in self.packages for c in p.conflicts]


@dataclass(frozen=True)
class PackSummary:
    """What ``pack_reader`` wrote."""

    out_dir: Path
    reader_id: str
    n_assignments: int
    n_series: int
    n_files: int


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _copy_rows(dst: Connection, model: type[Any], rows: Iterable[Any]) -> int:
    """Insert rows read from another database of the same schema (same ids)."""
    records = [dict(r._mapping) for r in rows]
    if records:
        dst.execute(insert(model), records)
    return len(records)


def pack_reader(
    store_path: Path | str,
    reader_id: str,
    out_dir: Path | str,
    *,
    progress: ProgressCallback = no_progress,
    clock: Clock = system_clock,
) -> PackSummary:
    """Write a self-contained reading package for one reader.

    Parameters
    ----------
    store_path
        The study database.
    reader_id
        The reader (StudyError if unknown).
    out_dir
        The package folder to create (must not exist, or be empty). Built under a temporary
        name beside it and renamed when complete.
    progress
        ``progress(done, total, message)``.
    clock
        The time the package records as its creation (see :mod:`studies.clock`).

    Returns
    -------
    PackSummary
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise StudyError(f"{out_dir}: already exists and is not empty; choose a new folder")
    if not out_dir.parent.is_dir():
        raise StudyError(f"{out_dir.parent}: folder not found (for the package)")
    with Store.open(store_path, clock=clock) as store:
        store.sessions(reader_id)  # StudyError naming the known readers
        tmp = out_dir.parent / f".{out_dir.name}.tmp-{secrets.token_hex(4)}"
        try:
            tmp.mkdir()
            summary = _write_package(store, reader_id, tmp, progress)
            if out_dir.exists():
                out_dir.rmdir()
            os.rename(tmp, out_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return PackSummary(out_dir, reader_id, *summary)


def _write_package(
    store: Store, reader_id: str, folder: Path, progress: ProgressCallback
) -> tuple[int, int, int]:
    engine = make_engine(folder / PACKAGE_DB, check_filesystem=False)
    try:
        upgrade(engine)
        with (
            store.engine.connect().execution_options(sqlite_begin="DEFERRED") as src,
            engine.begin() as dst,
        ):
            reader_pk = src.execute(
                select(Reader.id).where(Reader.reader_id == reader_id)
            ).scalar_one()
            session_pks = [
                r[0]
                for r in src.execute(
                    select(ReadingSession.id).where(ReadingSession.reader_pk == reader_pk)
                )
            ]
            assignments = src.execute(
                select(Assignment.__table__).where(Assignment.session_pk.in_(session_pks))
            ).all()
            assignment_pks = [a.id for a in assignments]
            case_pks = {a.case_pk for a in assignments}
            study_rows = [dict(r._mapping) for r in src.execute(select(Study.__table__))]
            for row in study_rows:
                row.update(origin="package", images_dir=PACKAGE_IMAGES)
            dst.execute(insert(Study), study_rows)
            for model in (Arm, Finding, Question):
                _copy_rows(dst, model, src.execute(select(model.__table__)))
            cases = src.execute(select(Case.__table__).where(Case.id.in_(case_pks))).all()
            subject_pks = {c.subject_pk for c in cases}
            # The workstation needs no study ids: cases and subjects go by their opaque ids.
            subjects = [
                {**dict(r._mapping), "subject_id": r.opaque_id}
                for r in src.execute(select(Subject.__table__).where(Subject.id.in_(subject_pks)))
            ]
            dst.execute(insert(Subject), subjects)
            dst.execute(insert(Case), [{**dict(c._mapping), "case_id": c.opaque_id} for c in cases])
            shown: set[tuple[str, str]] = set()
            for a in assignments:
                for arm_pk in (a.arm_pk, a.left_arm_pk, a.right_arm_pk):
                    if arm_pk is not None:
                        shown.add((a.case_pk, arm_pk))
            series = [
                s
                for s in src.execute(
                    select(Series.__table__).where(Series.case_pk.in_(case_pks))
                ).all()
                if (s.case_pk, s.arm_pk) in shown
            ]
            _copy_rows(dst, Series, series)
            _copy_rows(
                dst,
                Reader,
                src.execute(select(Reader.__table__).where(Reader.id == reader_pk)),
            )
            _copy_rows(
                dst,
                ReadingSession,
                src.execute(
                    select(ReadingSession.__table__).where(ReadingSession.reader_pk == reader_pk)
                ),
            )
            _copy_rows(dst, Assignment, assignments)
            answers = src.execute(
                select(Answer.__table__).where(Answer.assignment_pk.in_(assignment_pks))
            ).all()
            _copy_rows(dst, Answer, answers)
            _copy_rows(
                dst,
                AnswerRevision,
                src.execute(
                    select(AnswerRevision.__table__).where(
                        AnswerRevision.answer_pk.in_([a.id for a in answers])
                    )
                ),
            )
            events = src.execute(
                select(Event).where(Event.reader_id == reader_id).order_by(Event.seq)
            ).all()
        # The package has its own chain: the reader's events are re-linked in their order.
        with Session(engine) as s, s.begin():
            for e in events:
                append_event(
                    s,
                    kind=e.kind,
                    created_at=e.created_at,
                    reader_id=e.reader_id,
                    assignment_id=e.assignment_id,
                    payload=json.loads(e.payload_json),
                    event_id=e.id,
                )
            append_event(
                s,
                kind="package_created",
                created_at=store.now(),
                reader_id=reader_id,
                payload={"study": store.study_id, "source": store.source},
            )
    finally:
        engine.dispose()

    files: dict[str, str] = {}
    for i, s_row in enumerate(series):
        progress(i, len(series), f"copying series {i + 1} of {len(series)}")
        source = store.images_dir / s_row.folder
        target = folder / PACKAGE_IMAGES / s_row.folder
        shutil.copytree(source, target)
        for path in sorted(target.iterdir()):
            files[path.relative_to(folder).as_posix()] = _sha256(path)
    progress(len(series), len(series), "done")
    manifest = {
        "format": PACKAGE_FORMAT,
        "package_id": secrets.token_hex(16),
        "study_id": store.study_id,
        "study_title": store.study_title,
        "protocol_sha256": store.protocol_sha256,
        "reader_id": reader_id,
        "created_at": store.now().isoformat(),
        "database": PACKAGE_DB,
        "files": files,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return len(assignments), len(series), len(files)


def read_manifest(package_dir: Path) -> dict[str, Any]:
    """Read and check a package's manifest (StudyError naming the folder and the problem)."""
    path = package_dir / MANIFEST
    if not package_dir.is_dir():
        raise StudyError(f"{package_dir}: package folder not found")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudyError(f"{package_dir}: not a reading package (no {MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise StudyError(f"{path}: cannot read the package manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != PACKAGE_FORMAT:
        raise StudyError(f"{path}: format must be {PACKAGE_FORMAT!r}")
    for key in ("study_id", "protocol_sha256", "reader_id", "package_id"):
        if not isinstance(manifest.get(key), str):
            raise StudyError(f"{path}: key {key!r} missing")
    return manifest


def check_images(package_dir: Path, manifest: dict[str, Any]) -> list[str]:
    """Image files that are missing or changed against the manifest's checksums."""
    problems = []
    for rel, digest in dict(manifest.get("files", {})).items():
        path = package_dir / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
        elif _sha256(path) != digest:
            problems.append(f"{rel}: changed")
    return problems


def merge_packages(
    store_path: Path | str, package_dirs: Sequence[Path | str], *, clock: Clock = system_clock
) -> MergeReport:
    """Import answers, revisions, completions and events from returned packages.

    Parameters
    ----------
    store_path
        The study database.
    package_dirs
        Package folders written by :func:`pack_reader` (and answered in).
    clock
        The time the merge records, and against which washout locks are computed.

    Returns
    -------
    MergeReport
        Per package: what was imported and the conflicts left unresolved.

    Raises
    ------
    StudyError
        A folder is not a package, belongs to another study or protocol, names a reader the
        study lacks, or its event chain does not verify. Nothing of that package is imported;
        packages before it in the list stay merged (each package is one transaction).
    """
    report = MergeReport()
    with Store.open(store_path, clock=clock) as store:
        for raw in package_dirs:
            package_dir = Path(raw)
            manifest = read_manifest(package_dir)
            if manifest["study_id"] != store.study_id:
                raise StudyError(
                    f"{package_dir}: package of another study (study id {manifest['study_id']}; "
                    f"{store.source} is {store.study_id})"
                )
            if manifest["protocol_sha256"] != store.protocol_sha256:
                raise StudyError(f"{package_dir}: the package's protocol differs from the study's")
            reader_id = str(manifest["reader_id"])
            store.sessions(reader_id)
            pkg_db = package_dir / str(manifest.get("database", PACKAGE_DB))
            with Store.open(pkg_db, clock=clock) as pkg:
                if pkg.study_id != store.study_id:
                    raise StudyError(f"{package_dir}: the package database is of another study")
                problems = pkg.verify_events()
                if problems:
                    raise StudyError(
                        f"{package_dir}: the package's event log does not verify "
                        f"({len(problems)} problem(s), first: {problems[0]}); not merged"
                    )
                report.packages.append(_merge_one(store, pkg, package_dir, manifest, reader_id))
    return report


def _merge_one(
    store: Store, pkg: Store, package_dir: Path, manifest: dict[str, Any], reader_id: str
) -> PackageMerge:
    result = PackageMerge(package_dir, reader_id)
    with pkg.reading() as ps:
        p_assignments = {
            a.id: a for a in ps.execute(select(Assignment).order_by(Assignment.position)).scalars()
        }
        p_answers = ps.execute(select(Answer)).scalars().all()
        p_revisions: dict[str, list[AnswerRevision]] = defaultdict(list)
        for rev in ps.execute(
            select(AnswerRevision).order_by(AnswerRevision.answer_pk, AnswerRevision.revision)
        ).scalars():
            p_revisions[rev.answer_pk].append(rev)
        p_events = ps.execute(select(Event).order_by(Event.seq)).scalars().all()
    now = store.now()
    with store.writing() as s:
        reader_pk = s.execute(select(Reader.id).where(Reader.reader_id == reader_id)).scalar_one()
        sessions = {
            r.id: r
            for r in s.execute(
                select(ReadingSession).where(ReadingSession.reader_pk == reader_pk)
            ).scalars()
        }
        main_assignments = {
            a.id: a
            for a in s.execute(
                select(Assignment).where(Assignment.session_pk.in_(list(sessions)))
            ).scalars()
        }
        unknown = [a for a in p_assignments if a not in main_assignments]
        if unknown:
            raise StudyError(
                f"{package_dir}: {len(unknown)} assignment(s) of the package are not reader "
                f"{reader_id!r}'s in the study (first: {unknown[0]}); not merged"
            )
        conflicted: set[str] = set()
        for p_answer in p_answers:
            outcome = _merge_answer(s, p_answer, p_revisions[p_answer.id], result)
            if outcome is not None:
                a = main_assignments[p_answer.assignment_pk]
                session = sessions[a.session_pk]
                result.conflicts.append(
                    Conflict(
                        reader_id=reader_id,
                        session_index=session.index,
                        position=a.position,
                        assignment_id=a.id,
                        key=AnswerKey(
                            p_answer.question_id,
                            p_answer.finding_id or None,
                            p_answer.side or None,  # type: ignore[arg-type]
                        ),
                        study_values=outcome[0],
                        package_values=outcome[1],
                    )
                )
                conflicted.add(a.id)
        for aid, p_a in p_assignments.items():
            m_a = main_assignments[aid]
            if p_a.completed_at is not None and m_a.completed_at is None and aid not in conflicted:
                m_a.completed_at = p_a.completed_at
                result.n_completed += 1
        s.flush()
        known_events = set(s.execute(select(Event.id)).scalars())
        for e in p_events:
            if e.id in known_events:
                continue
            append_event(
                s,
                kind=e.kind,
                created_at=e.created_at,
                reader_id=e.reader_id,
                assignment_id=e.assignment_id,
                payload=json.loads(e.payload_json),
                event_id=e.id,
            )
            result.n_events += 1
        if result.n_completed:
            for session in sorted(sessions.values(), key=lambda r: r.index):
                store.refresh_session(s, session, reader_id, now)
        if result.changed:
            summary = {
                "package_id": manifest["package_id"],
                "reader": reader_id,
                "answers": result.n_answers,
                "revisions": result.n_revisions,
                "events": result.n_events,
                "completed": result.n_completed,
                "conflicts": [str(c) for c in result.conflicts],
            }
            append_event(
                s, kind="package_merged", created_at=now, reader_id=reader_id, payload=summary
            )
            s.add(
                MergeLog(
                    package_id=str(manifest["package_id"]),
                    reader_id=reader_id,
                    source=str(package_dir.resolve()),
                    n_answers=result.n_answers,
                    n_revisions=result.n_revisions,
                    n_events=result.n_events,
                    n_conflicts=len(result.conflicts),
                    report=summary,
                    created_at=now,
                )
            )
    return result


def _merge_answer(
    s: Session, p_answer: Answer, p_revs: list[AnswerRevision], result: PackageMerge
) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """Bring one answer's revisions over; return (study, package) values on a conflict."""
    m_answer = s.execute(
        select(Answer).where(
            Answer.assignment_pk == p_answer.assignment_pk,
            Answer.question_id == p_answer.question_id,
            Answer.finding_id == p_answer.finding_id,
            Answer.side == p_answer.side,
        )
    ).scalar_one_or_none()
    if m_answer is None:
        s.add(
            Answer(
                id=p_answer.id,
                assignment_pk=p_answer.assignment_pk,
                question_id=p_answer.question_id,
                finding_id=p_answer.finding_id,
                side=p_answer.side,
                value_json=p_answer.value_json,
                arm_value=p_answer.arm_value,
                revision=p_answer.revision,
                first_answered_at=p_answer.first_answered_at,
                last_answered_at=p_answer.last_answered_at,
            )
        )
        s.flush()
        for rev in p_revs:
            s.add(_copy_revision(rev, p_answer.id))
        result.n_answers += 1
        result.n_revisions += len(p_revs)
        return None
    m_revs = (
        s.execute(
            select(AnswerRevision)
            .where(AnswerRevision.answer_pk == m_answer.id)
            .order_by(AnswerRevision.revision)
        )
        .scalars()
        .all()
    )
    m_hist = [(r.id, r.value_json) for r in m_revs]
    p_hist = [(r.id, r.value_json) for r in p_revs]
    if p_hist[: len(m_hist)] == m_hist:
        for rev in p_revs[len(m_revs) :]:
            s.add(_copy_revision(rev, m_answer.id))
            result.n_revisions += 1
        if len(p_revs) > len(m_revs):
            last = p_revs[-1]
            m_answer.value_json = last.value_json
            m_answer.arm_value = last.arm_value
            m_answer.revision = last.revision
            m_answer.last_answered_at = last.recorded_at
        return None
    if m_hist[: len(p_hist)] == p_hist:
        return None  # the study is ahead of the package
    if [v for _, v in m_hist] == [v for _, v in p_hist]:
        return None  # the same answers given in both places: nothing to choose between
    return tuple(v for _, v in m_hist), tuple(v for _, v in p_hist)


def _copy_revision(rev: AnswerRevision, answer_pk: str) -> AnswerRevision:
    return AnswerRevision(
        id=rev.id,
        answer_pk=answer_pk,
        revision=rev.revision,
        value_json=rev.value_json,
        arm_value=rev.arm_value,
        recorded_at=rev.recorded_at,
        reason=rev.reason,
    )
