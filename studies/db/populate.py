"""Write a new study's rows: protocol, arms, readers, cases, series, sessions and assignments."""

from __future__ import annotations

import platform
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from typing import Any

from sqlalchemy.orm import Session

from studies.actor import os_user
from studies.cases import CaseRow
from studies.db.models import (
    Arm,
    Assignment,
    Case,
    CaseTruth,
    Finding,
    Question,
    Reader,
    ReadingSession,
    Series,
    Study,
    Subject,
)
from studies.events import append_event
from studies.protocol import Protocol, protocol_sha256
from studies.randomisation import PlannedAssignment
from studies.record import record_all

#: Libraries whose versions are stored with a study (they shape what was generated).
VERSIONED_LIBRARIES = ("blindreader", "numpy", "pydicom", "SQLAlchemy", "alembic", "pydantic")


@dataclass(frozen=True)
class SeriesCopy:
    """Where one series of a case on an arm was copied: its opaque id, folder and slice count."""

    opaque_id: str
    folder: str  # relative to the study's images folder
    n_slices: int
    files_sha256: str | None = None  # studies.image_digests.file_digests of its files


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries in :data:`VERSIONED_LIBRARIES`."""
    versions = {"python": platform.python_version()}
    for name in VERSIONED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def opaque_id(prefix: str, taken: set[str]) -> str:
    """A fresh random id such as ``s-3f9a1c2b7d4e`` that says nothing about what it names.

    Not drawn from the study seed on purpose: knowing the seed must not reveal the arms.
    """
    while True:
        candidate = f"{prefix}-{secrets.token_hex(6)}"
        if candidate not in taken:
            taken.add(candidate)
            return candidate


def write_study(
    s: Session,
    *,
    protocol: Protocol,
    protocol_toml: str,
    cases: list[CaseRow],
    planned: Iterable[PlannedAssignment],
    series: Mapping[tuple[str, str, str], SeriesCopy],
    images_dir: str,
    algorithm_version: str,
    created_at: datetime,
    extra_events: Iterable[tuple[str, dict[str, Any]]] = (),
    subject_opaque_ids: Mapping[str, str] | None = None,
) -> Study:
    """Insert every row of a new study into an empty database (inside the caller's transaction).

    Parameters
    ----------
    s
        An ORM session in a write transaction on a freshly migrated, empty database.
    protocol, protocol_toml
        The validated protocol and the exact text it came from (stored with its sha256).
    cases
        CASES.csv rows (one per case and arm).
    planned
        The generated assignments.
    series
        ``(case_id, arm, series label) -> SeriesCopy`` (``CaseRow.key``) for every row of
        ``cases``.
    images_dir
        The images folder, relative to the database's folder (or absolute).
    algorithm_version
        The assignment algorithm's version.
    created_at
        Creation time (UTC).
    extra_events
        ``(kind, payload)`` logged after ``study_created`` (e.g. an allowed leak).
    subject_opaque_ids
        ``subject_id -> opaque id`` already written into the DICOM copies (fresh ones if None).

    Every row written is recorded in the study record (:func:`studies.record.record_all`),
    keyed with the study key when ``s.info`` carries one (``studies.record.KEY_INFO``).
    """
    study = Study(
        title=protocol.title,
        design=protocol.design,
        protocol_toml=protocol_toml,
        protocol_sha256=protocol_sha256(protocol_toml),
        seed=protocol.seed,
        algorithm_version=algorithm_version,
        library_versions=library_versions(),
        images_dir=images_dir,
        created_at=created_at,
        origin="main",
    )
    s.add(study)
    s.flush()
    arms = {
        a.code: Arm(
            study_id=study.id, code=a.code, description=a.description, reference=a.reference
        )
        for a in protocol.arms
    }
    s.add_all(arms.values())
    s.add_all(Finding(study_id=study.id, finding_id=f.id, label=f.label) for f in protocol.findings)
    for i, q in enumerate(protocol.questions):
        s.add(
            Question(
                study_id=study.id,
                question_id=q.id,
                position=i + 1,
                type=q.type,
                scope=q.scope,
                text=q.text,
                options={
                    "options": [o.model_dump() for o in q.options],
                    "labels": list(q.labels),
                },
                spec=q.model_dump(mode="json", by_alias=True),
            )
        )
    readers = {
        r.id: Reader(study_id=study.id, reader_id=r.id, name=r.name, position=i + 1)
        for i, r in enumerate(protocol.readers)
    }
    s.add_all(readers.values())
    s.flush()

    taken: set[str] = {c.opaque_id for c in series.values()}
    given_subjects = dict(subject_opaque_ids or {})
    taken |= set(given_subjects.values())
    subjects: dict[str, Subject] = {}
    case_rows: dict[str, Case] = {}
    training = set(protocol.training_cases)
    for row in cases:
        if row.subject_id not in subjects:
            subjects[row.subject_id] = Subject(
                study_id=study.id,
                subject_id=row.subject_id,
                opaque_id=given_subjects.get(row.subject_id) or opaque_id("p", taken),
                export_id=opaque_id("e", taken),
            )
            s.add(subjects[row.subject_id])
    s.flush()
    for row in cases:
        if row.case_id not in case_rows:
            case_rows[row.case_id] = Case(
                study_id=study.id,
                case_id=row.case_id,
                opaque_id=opaque_id("c", taken),
                subject_pk=subjects[row.subject_id].id,
                sequence=row.sequence,
                is_training=row.case_id in training,
                export_id=opaque_id("e", taken),
            )
            s.add(case_rows[row.case_id])
    s.flush()
    truths: dict[tuple[str, str], int | None] = {}
    for row in cases:
        for finding_id, truth in row.truth.items():
            key = (row.case_id, finding_id)
            if truths.get(key) is None:
                truths[key] = truth
    s.add_all(
        CaseTruth(case_pk=case_rows[c].id, finding_id=f, truth=t) for (c, f), t in truths.items()
    )
    for row in cases:
        copy = series[row.key]
        s.add(
            Series(
                opaque_id=copy.opaque_id,
                case_pk=case_rows[row.case_id].id,
                arm_pk=arms[row.arm].id,
                folder=copy.folder,
                n_slices=copy.n_slices,
                label=row.series,
                files_sha256=copy.files_sha256,
            )
        )
    s.flush()

    sessions: dict[tuple[str, int], ReadingSession] = {}
    for reader_id, reader in readers.items():
        for index in range(1, protocol.n_sessions + 1):
            sessions[(reader_id, index)] = ReadingSession(reader_pk=reader.id, index=index)
    s.add_all(sessions.values())
    s.flush()
    n_assignments = 0
    for p in planned:
        s.add(
            Assignment(
                session_pk=sessions[(p.reader_id, p.session_index)].id,
                position=p.position,
                case_pk=case_rows[p.case_id].id,
                arm_pk=arms[p.arm].id if p.arm else None,
                left_arm_pk=arms[p.left_arm].id if p.left_arm else None,
                right_arm_pk=arms[p.right_arm].id if p.right_arm else None,
                is_training=p.is_training,
            )
        )
        n_assignments += 1
    s.flush()
    # The study record starts with an image of every row (keyed when the caller's session
    # carries the study key, see studies.record); the events below record themselves.
    record_all(s)
    append_event(
        s,
        kind="study_created",
        created_at=created_at,
        payload={
            "study": study.id,
            "protocol_sha256": study.protocol_sha256,
            "seed": study.seed,
            "algorithm_version": algorithm_version,
            "n_cases": len(case_rows),
            "n_series": len(series),
            "n_assignments": n_assignments,
            "os_user": os_user(),
        },
    )
    for kind, payload in extra_events:
        append_event(s, kind=kind, created_at=created_at, payload=payload)
    return study
