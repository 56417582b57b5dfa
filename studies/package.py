"""Reading packages for workstations: ``pack_reader`` and ``merge_packages``.

A package is a folder with ``study.sqlite`` (a fresh database holding what one reader needs and
nothing that names an arm, see :mod:`studies.package_format`), ``study_images/`` (the series that
reader's assignments show, copied in a random order with one neutral timestamp on every file and
folder, so neither modification times nor inode order follow the arms) and ``manifest.json``
(study id, protocol sha256, reader, the sha256 of every image file, and the anchor of the main
study's record at packing). The main study logs every package in ``package_log`` (with the
stand-in mapping the package itself must not hold) and anchors its record.

``merge_packages`` re-validates every package against the main study first
(:mod:`studies.merge_checks`); a package with any problem is refused whole, with every problem
listed, and nothing of any package given is merged. Merging is idempotent: rows are matched by
their UUIDs, so a second merge of the same package imports nothing. An answer whose revision
history in the package does not extend the one in the study (or the other way round) is a
conflict: it is reported and left as it is, never overwritten. Preferences, stored by side in
the package, are mapped to arms here, in the main study.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from studies.actor import os_user
from studies.api import AnswerKey
from studies.clock import Clock, system_clock
from studies.db.engine import make_engine
from studies.db.migrate import upgrade
from studies.db.models import (
    Answer,
    AnswerRevision,
    Assignment,
    Base,
    Event,
    MergeLog,
    PackageLog,
    Reader,
    ReadingSession,
    new_id,
)
from studies.errors import StudyError
from studies.events import append_event
from studies.image_digests import sha256_of
from studies.json_file import read_json_object
from studies.merge_checks import check_package
from studies.package_format import (
    MANIFEST,
    PACKAGE_DB,
    PACKAGE_EVENT_KINDS,
    PACKAGE_FORMAT,
    PACKAGE_IMAGES,
    STATIC_TABLES,
    package_rows,
    reader_scope,
    shown_pairs,
)
from studies.progress import ProgressCallback, no_progress
from studies.record import KEY_INFO, head, record_all, record_rows
from studies.store import Store, preference_arm
from studies.temp_folders import remove_stale, temp_sibling

__all__ = [
    "MANIFEST",
    "PACKAGE_DB",
    "PACKAGE_FORMAT",
    "PACKAGE_IMAGES",
    "Conflict",
    "MergeRefusedError",
    "MergeReport",
    "PackSummary",
    "PackageMerge",
    "check_images",
    "merge_packages",
    "pack_reader",
    "read_manifest",
]


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


class MergeRefusedError(StudyError):
    """Packages that failed re-validation; nothing of any package given was merged.

    ``problems`` lists ``(package folder, problem)`` for every problem found.
    """

    def __init__(self, problems: list[tuple[Path, str]]) -> None:
        self.problems = problems
        folders = list(dict.fromkeys(p for p, _ in problems))
        super().__init__(
            f"{len(folders)} package(s) refused, nothing merged: {len(problems)} problem(s); "
            f"first: {self.lines()[0]}"
        )

    def lines(self) -> list[str]:
        """Every problem as one line that starts with its package folder."""
        return [
            problem if problem.startswith(str(folder)) else f"{folder}: {problem}"
            for folder, problem in self.problems
        ]


@dataclass(frozen=True)
class PackSummary:
    """What ``pack_reader`` wrote."""

    out_dir: Path
    reader_id: str
    n_assignments: int
    n_series: int
    n_files: int


def _table(name: str) -> Table:
    return Base.metadata.tables[name]


def _neutral_times(folder: Path, at: datetime) -> None:
    """Give every file and folder under ``folder`` (and itself) the same timestamp."""
    stamp = datetime.combine(at.astimezone(UTC).date(), time(0, 0), tzinfo=UTC).timestamp()
    for root, dirs, files in os.walk(folder, topdown=False):
        for name in [*files, *dirs]:
            os.utime(os.path.join(root, name), (stamp, stamp), follow_symlinks=False)
    os.utime(folder, (stamp, stamp))


def pack_reader(
    store_path: Path | str,
    reader_id: str,
    out_dir: Path | str,
    *,
    progress: ProgressCallback = no_progress,
    clock: Clock = system_clock,
    key_file: Path | str | None = None,
    rng: np.random.Generator | None = None,
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
        name beside it and renamed when complete; temporary folders left beside it by a killed
        earlier run are removed first (:mod:`studies.temp_folders`).
    progress
        ``progress(done, total, message)``.
    clock
        The time the package records as its creation (see :mod:`studies.clock`).
    key_file
        The study key (default: the key folder's; see :mod:`studies.study_key`).
    rng
        Orders the package's rows and files; a fresh unpredictable one by default (not the
        study seed: knowing the seed must not tell the order).

    Returns
    -------
    PackSummary
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise StudyError(f"{out_dir}: already exists and is not empty; choose a new folder")
    if not out_dir.parent.is_dir():
        raise StudyError(f"{out_dir.parent}: folder not found (for the package)")
    with Store.open(store_path, clock=clock, key_file=key_file) as store:
        if store.origin == "package":
            raise StudyError(f"{store.source}: a reader's package; pack from the main study")
        store.sessions(reader_id)  # StudyError naming the known readers
        remove_stale(out_dir)
        generator = rng if rng is not None else np.random.default_rng(secrets.randbits(128))
        tmp = temp_sibling(out_dir)
        try:
            tmp.mkdir()
            summary = _write_package(store, reader_id, out_dir, tmp, progress, generator)
            if out_dir.exists():
                out_dir.rmdir()
            os.rename(tmp, out_dir)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise StudyError(f"{out_dir}: cannot write the package ({exc.strerror})") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return PackSummary(out_dir, reader_id, *summary)


def _write_package(
    store: Store,
    reader_id: str,
    out_dir: Path,
    folder: Path,
    progress: ProgressCallback,
    rng: np.random.Generator,
) -> tuple[int, int, int]:
    now = store.now()
    package_id = secrets.token_hex(16)
    with store.reading() as src:
        scope = reader_scope(src, reader_id)
        stand_ins = {
            new_id(): (case_pk, arm_pk, f"x-{secrets.token_hex(6)}")
            for case_pk, arm_pk in shown_pairs(scope["assignments"])
        }
        rows, _ = package_rows(src, reader_id, stand_ins)
        events = [
            dict(r._mapping)
            for r in src.execute(
                select(_table("event"))
                .where(Event.reader_id == reader_id, Event.kind.in_(PACKAGE_EVENT_KINDS))
                .order_by(Event.seq)
            )
        ]
    db_path = folder / PACKAGE_DB
    engine = make_engine(db_path, check_filesystem=False)
    try:
        upgrade(engine)
        with Session(engine) as s, s.begin():
            # The pack-time rows are keyed with the study key (where it is): a merge can tell
            # them from the reader's later work.
            s.info[KEY_INFO] = store.key
            for name in (*STATIC_TABLES, "answer", "answer_revision"):
                table_rows = rows[name]
                if table_rows:
                    order = rng.permutation(len(table_rows))
                    s.execute(insert(_table(name)), [table_rows[i] for i in order])
            record_all(s)
            for e in events:
                append_event(
                    s,
                    kind=e["kind"],
                    created_at=e["created_at"],
                    reader_id=e["reader_id"],
                    assignment_id=e["assignment_id"],
                    payload=json.loads(e["payload_json"]),
                    event_id=e["id"],
                )
            append_event(
                s,
                kind="package_created",
                created_at=now,
                reader_id=reader_id,
                payload={"package_id": package_id},
            )
            package_head = head(s)
    finally:
        engine.dispose()
    con = sqlite3.connect(db_path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    finally:
        con.close()

    series = rows["series"]
    files: dict[str, str] = {}
    images = folder / PACKAGE_IMAGES
    images.mkdir()
    for i, index in enumerate(rng.permutation(len(series))):
        progress(i, len(series), f"copying series {i + 1} of {len(series)}")
        s_row = series[index]
        source = store.images_dir / s_row["folder"]
        target = images / s_row["folder"]
        target.mkdir(parents=True)
        names = sorted(p.name for p in source.iterdir() if p.is_file())
        for k in rng.permutation(len(names)):
            shutil.copyfile(source / names[k], target / names[k])  # data only, no times
            files[(target / names[k]).relative_to(folder).as_posix()] = sha256_of(target / names[k])
    progress(len(series), len(series), "done")

    assert package_head is not None
    with store.writing() as s:
        log = PackageLog(
            package_id=package_id,
            reader_id=reader_id,
            target=str(out_dir.resolve()),
            os_user=os_user(),
            created_at=now,
            mapping={
                "stand_ins": {k: list(v) for k, v in stand_ins.items()},
                "answers": [r["id"] for r in rows["answer"]],
                "revisions": [r["id"] for r in rows["answer_revision"]],
                "events": [e["id"] for e in events],
                "package_head": {"seq": package_head.seq, "hash": package_head.hash},
            },
        )
        s.add(log)
        s.flush()
        record_rows(s, PackageLog, [log.id])
        append_event(
            s,
            kind="package_created",
            created_at=now,
            reader_id=reader_id,
            payload={
                "package_id": package_id,
                "assignments": len(rows["assignment"]),
                "os_user": os_user(),
            },
        )
        at_head = head(s)
    assert at_head is not None
    anchor = store.publish_anchor(at_head, f"study pack for reader {reader_id}", now)
    manifest = {
        "format": PACKAGE_FORMAT,
        "package_id": package_id,
        "study_id": store.study_id,
        "study_title": rows["study"][0]["title"],
        "protocol_sha256": rows["study"][0]["protocol_sha256"],
        "reader_id": reader_id,
        "created_at": now.isoformat(),
        "database": PACKAGE_DB,
        "files": dict(sorted(files.items())),
        "anchor": anchor,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    _neutral_times(folder, now)
    return len(rows["assignment"]), len(series), len(files)


def read_manifest(package_dir: Path) -> dict[str, Any]:
    """Read and check a package's manifest (StudyError naming the folder and the problem)."""
    path = package_dir / MANIFEST
    if not package_dir.is_dir():
        raise StudyError(f"{package_dir}: package folder not found")
    manifest = read_json_object(
        path, "a package manifest", missing=f"{package_dir}: not a reading package (no {MANIFEST})"
    )
    if manifest.get("format") != PACKAGE_FORMAT:
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
        elif sha256_of(path) != digest:
            problems.append(f"{rel}: changed")
    return problems


def merge_packages(
    store_path: Path | str,
    package_dirs: Sequence[Path | str],
    *,
    clock: Clock = system_clock,
    key_file: Path | str | None = None,
) -> MergeReport:
    """Re-validate returned packages, then import their answers, revisions, completions and
    events.

    Parameters
    ----------
    store_path
        The study database.
    package_dirs
        Package folders written by :func:`pack_reader` (and answered in).
    clock
        The time the merge records, and against which washout locks are computed.
    key_file
        The study key (default: the key folder's).

    Returns
    -------
    MergeReport
        Per package: what was imported and the conflicts left unresolved.

    Raises
    ------
    MergeRefusedError
        Some package failed re-validation (:mod:`studies.merge_checks`): every problem of every
        package is listed and nothing of any package is merged.
    StudyError
        The study itself cannot be opened, or is a package.
    """
    report = MergeReport()
    with Store.open(store_path, clock=clock, key_file=key_file) as store:
        if store.origin == "package":
            raise StudyError(f"{store.source}: a reader's package; merge into the main study")
        now = store.now()
        problems: list[tuple[Path, str]] = []
        accepted: list[tuple[Path, dict[str, Any], str]] = []
        logs = _package_logs(store)
        for raw in package_dirs:
            package_dir = Path(raw)
            found = _check_one(store, package_dir, logs, now)
            if isinstance(found, list):
                problems += [(package_dir, p) for p in found]
            else:
                accepted.append((package_dir, *found))
        if problems:
            raise MergeRefusedError(problems)
        for package_dir, manifest, reader_id in accepted:
            pkg_db = package_dir / str(manifest.get("database", PACKAGE_DB))
            with Store.open(pkg_db, clock=clock, key_file=_key_path(store)) as pkg:
                report.packages.append(_merge_one(store, pkg, package_dir, manifest, reader_id))
    return report


def _key_path(store: Store) -> Path | None:
    return store.key.path if store.key is not None else None


def _package_logs(store: Store) -> dict[str, dict[str, Any]]:
    with store.reading() as s:
        return {
            str(r.package_id): dict(r._mapping) for r in s.execute(select(_table("package_log")))
        }


def _check_one(
    store: Store, package_dir: Path, logs: dict[str, dict[str, Any]], now: datetime
) -> list[str] | tuple[dict[str, Any], str]:
    """The package's problems, or (manifest, reader id) when it may be merged."""
    try:
        manifest = read_manifest(package_dir)
    except StudyError as exc:
        return [str(exc)]
    if manifest["study_id"] != store.study_id:
        return [
            f"package of another study (study id {manifest['study_id']}; {store.source} is "
            f"{store.study_id})"
        ]
    reader_id = str(manifest["reader_id"])
    log = logs.get(str(manifest["package_id"]))
    if log is None:
        return [
            f"package {manifest['package_id']} was not written by `study pack` of this study "
            "(not in its package log)"
        ]
    if log["reader_id"] != reader_id:
        return [
            f"the manifest names reader {reader_id!r}, the study packed it for {log['reader_id']!r}"
        ]
    problems = [f"image {p}" for p in check_images(package_dir, manifest)]
    pkg_db = package_dir / str(manifest.get("database", PACKAGE_DB))
    try:
        pkg = Store.open(pkg_db, clock=store.clock, key_file=_key_path(store))
    except StudyError as exc:
        return [*problems, str(exc)]
    with pkg:
        if pkg.study_id != store.study_id:
            return [*problems, "the package database is of another study"]
        problems += check_package(store, pkg, manifest, log, now)
    return problems if problems else (manifest, reader_id)


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
    arm_codes = store.arm_codes_by_pk()
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
        conflicted: set[str] = set()
        touched_answers: list[str] = []
        touched_revisions: list[str] = []
        for p_answer in p_answers:
            a = main_assignments[p_answer.assignment_pk]
            sides = (arm_codes.get(a.left_arm_pk or ""), arm_codes.get(a.right_arm_pk or ""))
            preference = store.protocol.question(p_answer.question_id).type == "preference"
            outcome = _merge_answer(
                s,
                p_answer,
                p_revisions[p_answer.id],
                result,
                sides if preference else None,
                touched_answers,
                touched_revisions,
            )
            if outcome is not None:
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
        completed: list[str] = []
        for aid, p_a in p_assignments.items():
            m_a = main_assignments[aid]
            if p_a.completed_at is not None and m_a.completed_at is None and aid not in conflicted:
                m_a.completed_at = p_a.completed_at
                completed.append(aid)
                result.n_completed += 1
        s.flush()
        record_rows(s, Answer, touched_answers)
        record_rows(s, AnswerRevision, touched_revisions)
        record_rows(s, Assignment, completed)
        known_events = set(s.execute(select(Event.id)).scalars())
        for e in p_events:
            if e.id in known_events or e.kind == "package_created":
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
        at_head = None
        if result.changed:
            summary = {
                "package_id": manifest["package_id"],
                "reader": reader_id,
                "answers": result.n_answers,
                "revisions": result.n_revisions,
                "events": result.n_events,
                "completed": result.n_completed,
                "conflicts": [str(c) for c in result.conflicts],
                "os_user": os_user(),
            }
            append_event(
                s, kind="package_merged", created_at=now, reader_id=reader_id, payload=summary
            )
            log = MergeLog(
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
            s.add(log)
            s.flush()
            record_rows(s, MergeLog, [log.id])
            at_head = head(s)
    if at_head is not None:
        store.publish_anchor(at_head, f"study merge of package {manifest['package_id']}", now)
    return result


def _merge_answer(
    s: Session,
    p_answer: Answer,
    p_revs: list[AnswerRevision],
    result: PackageMerge,
    sides: tuple[str | None, str | None] | None,
    touched_answers: list[str],
    touched_revisions: list[str],
) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """Bring one answer's revisions over; return (study, package) values on a conflict.

    ``sides`` are the arm codes on the left and right of a preference question's assignment:
    the package stores the side, the study the arm too.
    """

    def arm_of(value_json: str) -> str | None:
        return preference_arm(json.loads(value_json), *sides) if sides is not None else None

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
                arm_value=arm_of(p_answer.value_json),
                revision=p_answer.revision,
                first_answered_at=p_answer.first_answered_at,
                last_answered_at=p_answer.last_answered_at,
            )
        )
        s.flush()
        for rev in p_revs:
            s.add(_copy_revision(rev, p_answer.id, arm_of(rev.value_json)))
            touched_revisions.append(rev.id)
        touched_answers.append(p_answer.id)
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
            s.add(_copy_revision(rev, m_answer.id, arm_of(rev.value_json)))
            touched_revisions.append(rev.id)
            result.n_revisions += 1
        if len(p_revs) > len(m_revs):
            last = p_revs[-1]
            m_answer.value_json = last.value_json
            m_answer.arm_value = arm_of(last.value_json)
            m_answer.revision = last.revision
            m_answer.last_answered_at = last.recorded_at
            touched_answers.append(m_answer.id)
        return None
    if m_hist[: len(p_hist)] == p_hist:
        return None  # the study is ahead of the package
    if [v for _, v in m_hist] == [v for _, v in p_hist]:
        return None  # the same answers given in both places: nothing to choose between
    return tuple(v for _, v in m_hist), tuple(v for _, v in p_hist)


def _copy_revision(rev: AnswerRevision, answer_pk: str, arm_value: str | None) -> AnswerRevision:
    columns = {c.name: getattr(rev, c.name) for c in AnswerRevision.__table__.columns}
    return AnswerRevision(**{**columns, "answer_pk": answer_pk, "arm_value": arm_value})
