"""SQLAlchemy 2 typed models of a study database (one study per database).

Keys are UUID strings made in Python (so rows can move between databases: packages and merges);
timestamps are UTC. Answers keep their current value in ``answer`` and every value they ever had in
``answer_revision`` (append-only); ``event`` is an append-only, hash-chained log. ``record`` is the
study record: a keyed, chained image of every row that decides the verdict (``studies.record``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from studies.api import DEFAULT_SERIES_LABEL


def new_id() -> str:
    """Return a fresh UUID4 string key."""
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and read back as an aware UTC datetime.

    SQLite keeps no time zone; storing naive UTC everywhere makes both back ends round-trip the
    same microseconds, which the event hash chain relies on.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware (UTC)")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


# "No finding" / "no side" are stored as "" so the unique constraint on answers holds
# (NULLs never collide in a unique constraint).
NONE_KEY = ""


class Base(DeclarativeBase):
    """Declarative base of the study models."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Study(Base):
    """The study: its protocol (TOML text and sha256) and how the assignments were made."""

    __tablename__ = "study"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(Text)
    design: Mapped[str] = mapped_column(String(16))
    protocol_toml: Mapped[str] = mapped_column(Text)
    protocol_sha256: Mapped[str] = mapped_column(String(64))
    seed: Mapped[int] = mapped_column(Integer)
    algorithm_version: Mapped[str] = mapped_column(String(64))
    library_versions: Mapped[dict[str, Any]] = mapped_column(JSON)
    images_dir: Mapped[str] = mapped_column(Text)  # relative to the database's folder, or absolute
    created_at: Mapped[datetime] = mapped_column()
    origin: Mapped[str] = mapped_column(String(16), default="main")  # "main" or "package"


class Arm(Base):
    """One arm (reconstruction) of the study."""

    __tablename__ = "arm"
    __table_args__ = (UniqueConstraint("study_id", "code"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    study_id: Mapped[str] = mapped_column(ForeignKey("study.id"))
    code: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text)
    reference: Mapped[bool] = mapped_column(Boolean)


class Subject(Base):
    """A patient; ``opaque_id`` replaces ``subject_id`` in blinded exports."""

    __tablename__ = "subject"
    __table_args__ = (UniqueConstraint("study_id", "subject_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    study_id: Mapped[str] = mapped_column(ForeignKey("study.id"))
    subject_id: Mapped[str] = mapped_column(String(200))
    opaque_id: Mapped[str] = mapped_column(String(64), unique=True)
    # The id of the blinded answers export: shared with no package, no DICOM header.
    export_id: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)


class Case(Base):
    """The comparison unit (one exam or sequence of a subject), shared by its arms."""

    __tablename__ = "case"
    __table_args__ = (UniqueConstraint("study_id", "case_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    study_id: Mapped[str] = mapped_column(ForeignKey("study.id"))
    case_id: Mapped[str] = mapped_column(String(200))
    opaque_id: Mapped[str] = mapped_column(String(64), unique=True)
    subject_pk: Mapped[str] = mapped_column(ForeignKey("subject.id"))
    sequence: Mapped[str] = mapped_column(String(200), default="")
    is_training: Mapped[bool] = mapped_column(Boolean, default=False)
    # The id of the blinded answers export: shared with no package, no DICOM header.
    export_id: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)

    subject: Mapped[Subject] = relationship()


class CaseTruth(Base):
    """The reference standard of one case for one finding (``truth_<finding>`` in CASES.csv)."""

    __tablename__ = "case_truth"
    __table_args__ = (UniqueConstraint("case_pk", "finding_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    case_pk: Mapped[str] = mapped_column(ForeignKey("case.id"))
    finding_id: Mapped[str] = mapped_column(String(200))
    truth: Mapped[int | None] = mapped_column(Integer)


class Series(Base):
    """One blinded DICOM series: one labelled series of a case on an arm, under an opaque id.

    ``label`` is the neutral series name of CASES.csv's ``series`` column (``cor_pd``,
    ``sag_t2fs``, ...); every arm of a case has the same labels.
    """

    __tablename__ = "series"
    __table_args__ = (
        UniqueConstraint("case_pk", "arm_pk", "label", name="uq_series_case_arm_label"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    opaque_id: Mapped[str] = mapped_column(String(64), unique=True)
    case_pk: Mapped[str] = mapped_column(ForeignKey("case.id"))
    arm_pk: Mapped[str] = mapped_column(ForeignKey("arm.id"))
    folder: Mapped[str] = mapped_column(Text)  # relative to the study's images folder
    n_slices: Mapped[int] = mapped_column(Integer)
    # {file name: sha256} of the blinded files (studies.image_digests); None before version 0004
    files_sha256: Mapped[str | None] = mapped_column(Text)
    label: Mapped[str] = mapped_column(
        String(64), default=DEFAULT_SERIES_LABEL, server_default=DEFAULT_SERIES_LABEL
    )


class Finding(Base):
    """A finding the readers grade (per-finding questions)."""

    __tablename__ = "finding"
    __table_args__ = (UniqueConstraint("study_id", "finding_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    study_id: Mapped[str] = mapped_column(ForeignKey("study.id"))
    finding_id: Mapped[str] = mapped_column(String(200))
    label: Mapped[str] = mapped_column(Text)


class Question(Base):
    """A question of the protocol; ``spec`` is the full question as the protocol gives it."""

    __tablename__ = "question"
    __table_args__ = (UniqueConstraint("study_id", "question_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    study_id: Mapped[str] = mapped_column(ForeignKey("study.id"))
    question_id: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    options: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"options": [...], "labels": [...]}
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)


class Reader(Base):
    """A reader (radiologist)."""

    __tablename__ = "reader"
    __table_args__ = (UniqueConstraint("study_id", "reader_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    study_id: Mapped[str] = mapped_column(ForeignKey("study.id"))
    reader_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer)
    # Salted scrypt hash of the reader's passphrase (``studies.passphrase``); None: no sign-in.
    passphrase: Mapped[str | None] = mapped_column(Text, default=None)


class ReadingSession(Base):
    """One reader's session; ``not_before`` is set by washout when the previous one finishes."""

    __tablename__ = "reading_session"
    __table_args__ = (UniqueConstraint("reader_pk", "index"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    reader_pk: Mapped[str] = mapped_column(ForeignKey("reader.id"))
    index: Mapped[int] = mapped_column(Integer)
    not_before: Mapped[date | None] = mapped_column(Date)
    finished_at: Mapped[datetime | None] = mapped_column()


class Assignment(Base):
    """One case (sequential: on one arm; paired: two arms, left and right) in a session."""

    __tablename__ = "assignment"
    __table_args__ = (UniqueConstraint("session_pk", "position"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    session_pk: Mapped[str] = mapped_column(ForeignKey("reading_session.id"))
    position: Mapped[int] = mapped_column(Integer)
    case_pk: Mapped[str] = mapped_column(ForeignKey("case.id"))
    arm_pk: Mapped[str | None] = mapped_column(ForeignKey("arm.id"))
    left_arm_pk: Mapped[str | None] = mapped_column(ForeignKey("arm.id"))
    right_arm_pk: Mapped[str | None] = mapped_column(ForeignKey("arm.id"))
    is_training: Mapped[bool] = mapped_column(Boolean, default=False)
    completed_at: Mapped[datetime | None] = mapped_column()


class Answer(Base):
    """The current value of one answer; its history is in ``answer_revision``."""

    __tablename__ = "answer"
    __table_args__ = (UniqueConstraint("assignment_pk", "question_id", "finding_id", "side"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    assignment_pk: Mapped[str] = mapped_column(ForeignKey("assignment.id"))
    question_id: Mapped[str] = mapped_column(String(200))
    finding_id: Mapped[str] = mapped_column(String(200), default=NONE_KEY)
    side: Mapped[str] = mapped_column(String(8), default=NONE_KEY)
    value_json: Mapped[str] = mapped_column(Text)  # as the reader gave it
    arm_value: Mapped[str | None] = mapped_column(String(64))  # preference mapped to an arm code
    revision: Mapped[int] = mapped_column(Integer)
    first_answered_at: Mapped[datetime] = mapped_column()
    last_answered_at: Mapped[datetime] = mapped_column()


class AnswerRevision(Base):
    """One value an answer had (append-only: rows are never updated or deleted)."""

    __tablename__ = "answer_revision"
    __table_args__ = (UniqueConstraint("answer_pk", "revision"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    answer_pk: Mapped[str] = mapped_column(ForeignKey("answer.id"))
    revision: Mapped[int] = mapped_column(Integer)
    value_json: Mapped[str] = mapped_column(Text)
    arm_value: Mapped[str | None] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column()
    # Why an answer of an already completed assignment was changed (None while it was open).
    reason: Mapped[str | None] = mapped_column(Text)


class Event(Base):
    """One entry of the append-only event log; ``hash`` chains it to the previous entry."""

    __tablename__ = "event"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    reader_id: Mapped[str | None] = mapped_column(String(200))
    assignment_id: Mapped[str | None] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column()
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class ExportRun(Base):
    """One export: what was written where, and whether it was unblinded."""

    __tablename__ = "export_run"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    what: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(Text)
    unblinded: Mapped[bool] = mapped_column(Boolean)
    n_rows: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column()


class MergeLog(Base):
    """One package merge: which package, what was imported, which conflicts were left alone."""

    __tablename__ = "merge_log"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    package_id: Mapped[str] = mapped_column(String(36))
    reader_id: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(Text)
    n_answers: Mapped[int] = mapped_column(Integer)
    n_revisions: Mapped[int] = mapped_column(Integer)
    n_events: Mapped[int] = mapped_column(Integer)
    n_conflicts: Mapped[int] = mapped_column(Integer)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column()


class PackageLog(Base):
    """One package written by ``study pack``: for whom, by whom, and how its rows were blinded.

    ``mapping`` holds what the package itself must not: which neutral stand-in of the package
    stands for which arm of which case, and the seed that ordered its rows. ``merge`` rebuilds
    the package's expected rows from it and refuses a package whose rows differ.
    """

    __tablename__ = "package_log"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    package_id: Mapped[str] = mapped_column(String(64), unique=True)
    reader_id: Mapped[str] = mapped_column(String(200))
    target: Mapped[str] = mapped_column(Text)
    os_user: Mapped[str] = mapped_column(String(200))
    mapping: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column()


class RecordEntry(Base):
    """One entry of the study record: the image of one row as written (``studies.record``)."""

    __tablename__ = "record"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    table_name: Mapped[str] = mapped_column(String(64))
    row_id: Mapped[str] = mapped_column(String(200))
    image_json: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str | None] = mapped_column(String(64))  # HMAC with the study key, if held


class SchemaRelease(Base):
    """Which blindreader release applied each schema revision (named when a file is too new)."""

    __tablename__ = "schema_release"

    revision: Mapped[str] = mapped_column(String(32), primary_key=True)
    release: Mapped[str] = mapped_column(String(64))
