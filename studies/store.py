"""The study store: the one way to read and write a study database (see ``studies.api``).

Every write is one transaction opened with ``BEGIN IMMEDIATE`` on SQLite (``SELECT ... FOR
UPDATE`` on the study row on PostgreSQL, so the event chain has one writer at a time). When a
``record_*`` or ``complete_*`` call returns, what it wrote is committed and synced to disk.
"""

from __future__ import annotations

import json
import math
import sqlite3
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from numbers import Integral, Real
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, func, insert, inspect, select, update
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session

from studies.actor import os_user
from studies.api import (
    EVENT_KINDS,
    AnswerKey,
    AnswerRecord,
    AnswerValue,
    AssignmentView,
    ReaderInfo,
    SeriesImages,
    SessionInfo,
    Side,
    SideImages,
    SignInPolicy,
)
from studies.blinded_dicom import decode_pixels, read_source
from studies.clock import (
    Clock,
    system_clock,
    utc_now,
    washout_is_over,
    washout_not_before,
)
from studies.db.engine import is_url, make_engine, read_engine
from studies.db.migrate import head_revision, known_revisions, newer_schema_message, upgrade
from studies.db.models import (
    NONE_KEY,
    Answer,
    AnswerRevision,
    Arm,
    Assignment,
    Base,
    Case,
    Event,
    Reader,
    ReadingSession,
    RecordEntry,
    Series,
    Study,
    new_id,
)
from studies.errors import StudyError
from studies.events import append_event, canonical_json, verify_answers, verify_chain
from studies.image_digests import check_series_files, parse_digests
from studies.passphrase import hash_passphrase, passphrase_matches
from studies.protocol import (
    MEASUREMENT_TYPES,
    PREFERENCE_VALUES,
    Protocol,
    Question,
    parse_protocol,
)
from studies.record import (
    ANCHOR_ENTRY,
    KEY_INFO,
    SEAL_ENTRY,
    Head,
    RecordCheck,
    append_marker,
    head,
    make_anchor,
    record_rows,
    verify_record,
)
from studies.roi_stats import check_points, measure
from studies.study_key import (
    StudyKey,
    append_anchor,
    load_key,
    read_anchor_log,
    read_key_file,
)
from studies.timing import READER_LEVEL_KINDS, TimedEvent, active_time_ms

SQLITE_HEADER = b"SQLite format 3\x00"


@dataclass(frozen=True)
class _Probe:
    """What a database holds, read before anything is changed."""

    tables: frozenset[str]
    revision: str | None
    releases: dict[str, str]
    created_by: str | None


def _created_by(library_versions: object) -> str | None:
    if isinstance(library_versions, str):
        try:
            library_versions = json.loads(library_versions)
        except ValueError:
            return None
    if isinstance(library_versions, dict):
        value = library_versions.get("blindreader")
        return str(value) if value else None
    return None


def _probe(con: Connection) -> _Probe:
    tables = frozenset(inspect(con).get_table_names())
    revision = None
    if "alembic_version" in tables:
        revision = con.exec_driver_sql("select version_num from alembic_version").scalar()
    releases: dict[str, str] = {}
    if "schema_release" in tables:
        releases = {
            str(a): str(b)
            for a, b in con.exec_driver_sql("select revision, release from schema_release")
        }
    created_by = None
    if "study" in tables and any(
        c["name"] == "library_versions" for c in inspect(con).get_columns("study")
    ):
        created_by = _created_by(
            con.exec_driver_sql("select library_versions from study limit 1").scalar()
        )
    return _Probe(tables, None if revision is None else str(revision), releases, created_by)


def _check_sqlite_read_only(path: Path) -> None:
    """Refuse a SQLite file that is not a study of a known schema, or (at the newest schema)
    lacks a table or column, reading it without changing it (read-only: no WAL switch, no
    migration)."""
    uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
    engine = create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True))
    try:
        with engine.connect() as con:
            probe = _probe(con)
            refuse_foreign(str(path), probe)
            if probe.revision == head_revision():
                check_schema(con, str(path))
    except DBAPIError as exc:
        raise StudyError(f"{path}: not a study database ({getattr(exc, 'orig', exc)})") from None
    finally:
        engine.dispose()


def _probe_url(engine: Engine) -> _Probe:
    with engine.connect() as con:
        return _probe(con)


def refuse_foreign(source: str, probe: _Probe) -> None:
    """StudyError unless the database is a blindreader study of a schema this release knows.

    Runs before anything writes to the file: a foreign SQLite file is never switched to WAL,
    migrated or otherwise changed.
    """
    if "study" not in probe.tables:
        raise StudyError(f"{source}: not a study database (no study table)")
    if probe.revision is None:
        raise StudyError(
            f"{source}: not a study database (no schema version: not written by blindreader); "
            "nothing was changed"
        )
    if probe.revision not in known_revisions():
        raise StudyError(
            newer_schema_message(source, probe.revision, probe.releases, probe.created_by)
        )


def check_schema(bind: Engine | Connection, source: str) -> None:
    """StudyError naming the first table or column the study database lacks."""
    found = inspect(bind)
    tables = set(found.get_table_names())
    for table in Base.metadata.sorted_tables:
        if table.name not in tables:
            raise StudyError(
                f"{source}: the study database lacks table {table.name!r} (damaged, or changed "
                "outside blindreader); nothing was changed"
            )
        columns = {c["name"] for c in found.get_columns(table.name)}
        missing = [c.name for c in table.columns if c.name not in columns]
        if missing:
            raise StudyError(
                f"{source}: table {table.name!r} of the study database lacks column(s) "
                f"{', '.join(missing)} (damaged, or changed outside blindreader); nothing was "
                "changed"
            )


def database_problem(source: str, exc: DBAPIError) -> StudyError:
    """A database error (disk full, I/O error, locked, damaged) as one user-facing line."""
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    hint = ""
    if "full" in reason.lower() or "no space" in reason.lower():
        hint = "; free disk space and try again"
    return StudyError(
        f"{source}: the study database refused the write ({reason}){hint}; nothing of it was stored"
    )


@dataclass(frozen=True)
class _SessionState:
    n_total: int
    n_done: int
    locked: bool
    finished: bool
    not_before: date | None


class Store:
    """An open study database. Use :meth:`open`; close it (or use ``with``) when done."""

    def __init__(
        self,
        engine: Engine,
        source: str,
        images_root: Path,
        clock: Clock,
        key_file: Path | None = None,
    ) -> None:
        self._engine = engine
        self._read = read_engine(engine)
        self._source = source
        self._clock = clock
        with Session(self._read) as s:
            # Only what the store needs, so that a damaged cell elsewhere still lets
            # `study verify` open the study and name it.
            studies = s.execute(
                select(
                    Study.id,
                    Study.title,
                    Study.protocol_sha256,
                    Study.origin,
                    Study.protocol_toml,
                    Study.images_dir,
                )
            ).all()
            if len(studies) != 1:
                raise StudyError(
                    f"{source}: not a study database (holds {len(studies)} studies, expected 1)"
                )
            study = studies[0]
            self.study_id: str = study.id
            self.study_title: str = study.title
            self.protocol_sha256: str = study.protocol_sha256
            self.origin: str = study.origin
            self.protocol: Protocol = parse_protocol(
                study.protocol_toml, f"{source} (stored protocol)"
            )
            images = Path(study.images_dir)
            self.images_dir: Path = images if images.is_absolute() else images_root / images
            self._arm_codes: dict[str, str] = {
                str(pk): str(code) for pk, code in s.execute(select(Arm.id, Arm.code))
            }
            readers = s.execute(
                select(Reader.reader_id, Reader.id, Reader.name).order_by(Reader.position)
            ).all()
            self._readers: dict[str, tuple[str, str]] = {
                r.reader_id: (r.id, r.name) for r in readers
            }
        #: The study key (:mod:`studies.study_key`), None where this machine does not hold it.
        self.key: StudyKey | None = load_key(self.study_id, key_file)

    # ---- opening and closing --------------------------------------------------------------

    @classmethod
    def open(
        cls,
        db: str | Path,
        *,
        clock: Clock | None = None,
        key_file: Path | str | None = None,
    ) -> Store:
        """Open an existing study database and bring its schema up to date.

        Parameters
        ----------
        db
            The study's SQLite file, or a ``postgresql+psycopg://`` URL.
        clock
            Returns the current time as an aware datetime; the product passes
            :func:`studies.clock.system_clock` (the default), tests a fake one.
        key_file
            The study key; by default the one in the coordinator's key folder, if there
            (:mod:`studies.study_key`). Without a key the store still reads and writes; what it
            writes is then not keyed (see :mod:`studies.record`).

        Raises
        ------
        StudyError
            The file is missing, not a study database (nothing of it is changed), of a schema
            this release does not know (naming the version and the release that wrote it),
            lacks a table or column, is on a network file system, or ``key_file`` is not this
            study's key.
        """
        if is_url(db) and str(db).startswith("sqlite:///"):
            db = Path(str(db).removeprefix("sqlite:///"))  # a file, with its image folder beside
        if is_url(db):
            source = str(db)
            engine = make_engine(source)
            images_root = Path.cwd()
        else:
            path = Path(db)
            source = str(path)
            if not path.exists():
                raise StudyError(f"{path}: study database not found")
            if not path.is_file():
                raise StudyError(f"{path}: not a study database (not a file)")
            with path.open("rb") as fh:
                if fh.read(16) != SQLITE_HEADER:
                    raise StudyError(f"{path}: not a study database (not a SQLite file)")
            _check_sqlite_read_only(path)
            engine = make_engine(path)
            images_root = path.resolve().parent
        try:
            if is_url(db):
                refuse_foreign(source, _probe_url(engine))
            upgrade(engine)
            check_schema(engine, source)
            return cls(
                engine,
                source,
                images_root,
                clock or system_clock,
                Path(key_file) if key_file is not None else None,
            )
        except DBAPIError as exc:
            engine.dispose()
            raise StudyError(
                f"{source}: cannot open the study database ({getattr(exc, 'orig', exc)})"
            ) from None
        except (StatementError, ValueError, TypeError) as exc:
            engine.dispose()
            raise StudyError(
                f"{source}: the study database is damaged: a stored value cannot be read "
                f"({str(exc).splitlines()[0]}); run `study verify` for what changed"
            ) from None
        except BaseException:
            engine.dispose()
            raise

    def close(self) -> None:
        """Close the database connections."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def engine(self) -> Engine:
        """The engine (for ``studies`` modules: exports, packages)."""
        return self._engine

    @property
    def source(self) -> str:
        """The path or URL the store was opened from."""
        return self._source

    def now(self) -> datetime:
        """The store's clock, in UTC."""
        return utc_now(self._clock)

    @property
    def clock(self) -> Clock:
        """The clock the store was opened with (to open other stores on the same time)."""
        return self._clock

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only ORM session (does not take the SQLite write lock)."""
        try:
            with Session(self._read, expire_on_commit=False) as s, s.begin():
                yield s
        except DBAPIError as exc:
            raise database_problem(self._source, exc) from None

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """One write transaction: committed when the block ends, rolled back on an error.

        The session carries the study key (``s.info``) so that what is written is recorded
        with it (:func:`studies.record.record_rows`). A database error (disk full, I/O error)
        becomes a :class:`StudyError`; nothing of the transaction is stored.
        """
        try:
            with Session(self._engine, expire_on_commit=False) as s, s.begin():
                s.info[KEY_INFO] = self.key
                s.connection()  # begin now (BEGIN IMMEDIATE takes the write lock), not lazily
                if self._engine.dialect.name != "sqlite":
                    # One writer at a time keeps the event chain linear on a server database.
                    s.execute(select(Study.id).with_for_update())
                yield s
        except DBAPIError as exc:
            raise database_problem(self._source, exc) from None

    # ---- readers and sessions -------------------------------------------------------------

    def arm_codes_by_pk(self) -> dict[str, str]:
        """Arm code by arm row id (in a package: its neutral stand-ins)."""
        return dict(self._arm_codes)

    def readers(self) -> list[ReaderInfo]:
        """The study's readers, in protocol order."""
        return [ReaderInfo(rid, name) for rid, (_, name) in self._readers.items()]

    def _reader_pk(self, reader_id: str) -> str:
        try:
            return self._readers[reader_id][0]
        except KeyError:
            known = ", ".join(self._readers) or "none"
            raise StudyError(
                f"{self._source}: unknown reader {reader_id!r} (readers: {known})"
            ) from None

    # ---- signing in ------------------------------------------------------------------------

    def _passphrase_hash(self, reader_id: str) -> str | None:
        reader_pk = self._reader_pk(reader_id)
        with self.reading() as s:
            return s.execute(select(Reader.passphrase).where(Reader.id == reader_pk)).scalar_one()

    def requires_passphrase(self, reader_id: str) -> bool:
        """Whether the reader must give a passphrase to sign in (StudyError: unknown reader)."""
        return self._passphrase_hash(reader_id) is not None

    def sign_in_policy(self) -> SignInPolicy:
        """Which readers have a passphrase (for ``study status`` and the report)."""
        with self.reading() as s:
            rows = s.execute(
                select(Reader.reader_id, Reader.passphrase).order_by(Reader.position)
            ).all()
        return SignInPolicy(
            with_passphrase=tuple(r for r, p in rows if p is not None),
            without_passphrase=tuple(r for r, p in rows if p is None),
        )

    def set_passphrase(self, reader_id: str, passphrase: str | None) -> None:
        """Give a reader a passphrase (a salted scrypt hash is stored), or remove it (None).

        A coordinator action: its event records the operating-system user. Packages written
        afterwards ask for the new passphrase; packages already handed out keep the old one.

        Raises
        ------
        StudyError
            Unknown reader; a passphrase shorter than 8 characters; a reader's package.
        """
        reader_pk = self._reader_pk(reader_id)
        if self.origin == "package":
            raise StudyError(
                f"{self._source}: a reader's package; set passphrases in the main study"
            )
        stored = hash_passphrase(passphrase) if passphrase is not None else None
        now = self.now()
        with self.writing() as s:
            s.execute(update(Reader).where(Reader.id == reader_pk).values(passphrase=stored))
            record_rows(s, Reader, [reader_pk])
            append_event(
                s,
                kind="passphrase_set",
                created_at=now,
                payload={"reader": reader_id, "set": stored is not None, "os_user": os_user()},
            )

    def sign_in(self, reader_id: str, passphrase: str | None = None) -> None:
        """Sign a reader in: check the passphrase if they have one; log the attempt.

        Raises
        ------
        StudyError
            Unknown reader, or a missing or wrong passphrase (the refusal is logged).
        """
        stored = self._passphrase_hash(reader_id)
        ok = stored is None or (passphrase is not None and passphrase_matches(stored, passphrase))
        now = self.now()
        with self.writing() as s:
            append_event(
                s,
                kind="signed_in" if ok else "sign_in_refused",
                created_at=now,
                reader_id=reader_id,
                payload={"passphrase": stored is not None},
            )
        if not ok:
            raise StudyError(
                f"wrong passphrase for reader {reader_id!r}"
                if passphrase
                else f"reader {reader_id!r} signs in with a passphrase"
            )

    def _session_row(self, s: Session, reader_id: str, index: int) -> ReadingSession:
        row = s.execute(
            select(ReadingSession).where(
                ReadingSession.reader_pk == self._reader_pk(reader_id),
                ReadingSession.index == index,
            )
        ).scalar_one_or_none()
        if row is None:
            n = s.execute(
                select(func.count())
                .select_from(ReadingSession)
                .where(ReadingSession.reader_pk == self._reader_pk(reader_id))
            ).scalar_one()
            raise StudyError(
                f"{self._source}: reader {reader_id!r} has no session {index} (sessions 1..{n})"
            )
        return row

    def _state(self, s: Session, session: ReadingSession) -> _SessionState:
        n_total, n_done = s.execute(
            select(func.count(Assignment.id), func.count(Assignment.completed_at)).where(
                Assignment.session_pk == session.id
            )
        ).one()
        previous_unfinished = False
        if session.index > 1:
            previous = s.execute(
                select(ReadingSession.finished_at).where(
                    ReadingSession.reader_pk == session.reader_pk,
                    ReadingSession.index == session.index - 1,
                )
            ).scalar_one_or_none()
            previous_unfinished = previous is None
        locked = previous_unfinished or not washout_is_over(session.not_before, self.now())
        return _SessionState(
            n_total=n_total,
            n_done=n_done,
            locked=locked,
            finished=session.finished_at is not None,
            not_before=session.not_before,
        )

    def _info(self, s: Session, reader_id: str, session: ReadingSession) -> SessionInfo:
        st = self._state(s, session)
        return SessionInfo(
            reader_id=reader_id,
            index=session.index,
            n_total=st.n_total,
            n_done=st.n_done,
            not_before=st.not_before,
            locked=st.locked,
            finished=st.finished,
        )

    def sessions(self, reader_id: str) -> list[SessionInfo]:
        """A reader's sessions with progress and washout lock (StudyError: unknown reader)."""
        reader_pk = self._reader_pk(reader_id)
        with self.reading() as s:
            rows = s.execute(
                select(ReadingSession)
                .where(ReadingSession.reader_pk == reader_pk)
                .order_by(ReadingSession.index)
            ).scalars()
            return [self._info(s, reader_id, row) for row in rows]

    def session_progress(self, reader_id: str, session_index: int) -> SessionInfo:
        """One session's progress and lock state."""
        with self.reading() as s:
            return self._info(s, reader_id, self._session_row(s, reader_id, session_index))

    # ---- assignments ----------------------------------------------------------------------

    def _side_images(self, s: Session, case_pk: str, arm_pk: str | None) -> SideImages:
        """Every series of a case on one arm, in the protocol's hanging order."""
        rows = s.execute(
            select(Series).where(Series.case_pk == case_pk, Series.arm_pk == arm_pk)
        ).scalars()
        by_label = {row.label: row for row in rows}
        shown = []
        for label in self.protocol.hanging.order(by_label):
            series = by_label[label]
            folder = self.images_dir / series.folder
            files = (
                tuple(sorted(p for p in folder.glob("*") if p.is_file())) if folder.is_dir() else ()
            )
            shown.append(SeriesImages(series_id=series.opaque_id, files=files, label=label))
        if not shown:
            raise StudyError(f"{self._source}: a case has no series on one of its arms")
        return SideImages(series=tuple(shown))

    def _answers(self, s: Session, assignment_pk: str) -> dict[AnswerKey, AnswerValue]:
        out: dict[AnswerKey, AnswerValue] = {}
        for answer in s.execute(
            select(Answer).where(Answer.assignment_pk == assignment_pk)
        ).scalars():
            key = AnswerKey(
                answer.question_id,
                answer.finding_id or None,
                answer.side or None,  # type: ignore[arg-type]
            )
            out[key] = json.loads(answer.value_json)
        return out

    def _view(
        self,
        s: Session,
        a: Assignment,
        reader_id: str,
        session: ReadingSession,
        n: int,
        st: _SessionState,
    ) -> AssignmentView:
        if a.arm_pk is not None:
            sides: tuple[SideImages, ...] = (self._side_images(s, a.case_pk, a.arm_pk),)
        else:
            sides = (
                self._side_images(s, a.case_pk, a.left_arm_pk),
                self._side_images(s, a.case_pk, a.right_arm_pk),
            )
        return AssignmentView(
            assignment_id=a.id,
            reader_id=reader_id,
            session_index=session.index,
            position=a.position,
            n_in_session=n,
            display_label=f"Case {a.position} of {n}",
            sides=sides,
            answers=self._answers(s, a.id),
            completed=a.completed_at is not None,
            read_only=st.finished or st.locked,
            is_training=a.is_training,
            training_case=self._training_case(s, a, session) if a.is_training else None,
        )

    def _training_case(self, s: Session, a: Assignment, session: ReadingSession) -> str | None:
        """The protocol's id of a training case. A reader's package keeps only opaque case ids;
        there the position names it: training cases are read first in session 1, in the
        protocol's order (:mod:`studies.randomisation`)."""
        case_id = s.execute(select(Case.case_id).where(Case.id == a.case_pk)).scalar_one()
        training = self.protocol.training_cases
        if case_id in training:
            return str(case_id)
        if session.index == 1 and 1 <= a.position <= len(training):
            return training[a.position - 1]
        return None

    def assignments(self, reader_id: str, session_index: int) -> list[AssignmentView]:
        """A session's assignments in reading order."""
        with self.reading() as s:
            session = self._session_row(s, reader_id, session_index)
            st = self._state(s, session)
            rows = s.execute(
                select(Assignment)
                .where(Assignment.session_pk == session.id)
                .order_by(Assignment.position)
            ).scalars()
            return [self._view(s, a, reader_id, session, st.n_total, st) for a in rows]

    def next_assignment(
        self, reader_id: str, session_index: int | None = None
    ) -> AssignmentView | None:
        """The first uncompleted assignment of a session.

        Parameters
        ----------
        reader_id
            The reader.
        session_index
            The session; by default the first session that is neither locked nor finished.

        Returns
        -------
        AssignmentView or None
            None when the session is finished (or, by default, when no session is open).
        """
        reader_pk = self._reader_pk(reader_id)
        with self.reading() as s:
            if session_index is not None:
                candidates = [self._session_row(s, reader_id, session_index)]
            else:
                candidates = list(
                    s.execute(
                        select(ReadingSession)
                        .where(ReadingSession.reader_pk == reader_pk)
                        .order_by(ReadingSession.index)
                    ).scalars()
                )
            for session in candidates:
                st = self._state(s, session)
                if session_index is None and (st.locked or st.finished):
                    continue
                a = s.execute(
                    select(Assignment)
                    .where(Assignment.session_pk == session.id, Assignment.completed_at.is_(None))
                    .order_by(Assignment.position)
                    .limit(1)
                ).scalar_one_or_none()
                if a is not None:
                    return self._view(s, a, reader_id, session, st.n_total, st)
            return None

    def _assignment_row(
        self, s: Session, assignment_id: str
    ) -> tuple[Assignment, ReadingSession, str]:
        row = s.execute(
            select(Assignment, ReadingSession, Reader.reader_id)
            .join(ReadingSession, ReadingSession.id == Assignment.session_pk)
            .join(Reader, Reader.id == ReadingSession.reader_pk)
            .where(Assignment.id == assignment_id)
        ).first()
        if row is None:
            raise StudyError(f"{self._source}: unknown assignment {assignment_id!r}")
        return row[0], row[1], row[2]

    def assignment(self, assignment_id: str) -> AssignmentView:
        """One assignment by id (StudyError if there is none)."""
        with self.reading() as s:
            a, session, reader_id = self._assignment_row(s, assignment_id)
            st = self._state(s, session)
            return self._view(s, a, reader_id, session, st.n_total, st)

    # ---- answers --------------------------------------------------------------------------

    def _check_writable(self, s: Session, session: ReadingSession, reader_id: str) -> None:
        self._check_open(
            s,
            reader_id=reader_id,
            reader_pk=session.reader_pk,
            index=session.index,
            not_before=session.not_before,
            finished=session.finished_at is not None,
        )

    def _check_open(
        self,
        s: Session,
        *,
        reader_id: str,
        reader_pk: str,
        index: int,
        not_before: date | None,
        finished: bool,
    ) -> None:
        """StudyError unless the session may be answered: not finished, not locked."""
        where = f"session {index} of reader {reader_id!r}"
        if finished:
            raise StudyError(f"{where} is finished: its answers are read-only")
        if index > 1:
            previous = s.execute(
                select(ReadingSession.finished_at).where(
                    ReadingSession.reader_pk == reader_pk, ReadingSession.index == index - 1
                )
            ).scalar_one_or_none()
            if previous is None:
                raise StudyError(f"{where} is locked: finish session {index - 1} first")
        if not_before is not None and not washout_is_over(not_before, self.now()):
            raise StudyError(
                f"{where} is locked until {not_before.isoformat()} 00:00 UTC (washout of "
                f"{self.protocol.washout_days} days)"
            )

    def _check_key(self, question: Question, key: AnswerKey) -> None:
        q = f"question {question.id!r}"
        if question.scope == "finding":
            allowed = self.protocol.question_findings(question)
            if key.finding_id not in allowed:
                raise StudyError(
                    f"{q} is asked per finding: finding_id must be one of {', '.join(allowed)} "
                    f"(got {key.finding_id!r})"
                )
        elif question.per == "series" and question.type in MEASUREMENT_TYPES:
            if not key.finding_id:
                raise StudyError(
                    f"{q} is measured per series: finding_id must name the series (its label)"
                )
        elif key.finding_id is not None:
            raise StudyError(f"{q} is not asked per finding (got finding_id {key.finding_id!r})")
        if question.scope == "side":
            if key.side not in ("left", "right"):
                raise StudyError(
                    f"{q} is asked per side: side must be 'left' or 'right' (got {key.side!r})"
                )
        elif key.side is not None:
            raise StudyError(f"{q} is not asked per side (got side {key.side!r})")

    def validate_answer(self, key: AnswerKey, value: AnswerValue) -> AnswerValue:
        """Check an answer against the protocol (question, scope, value); return it as stored.

        Raises
        ------
        StudyError
            Unknown question, a finding or side the question is not asked for, or a value it
            does not accept.
        """
        question = self.protocol.question(key.question_id)
        self._check_key(question, key)
        normalised = validate_value(question, value)
        _check_series(question, key, normalised)
        return normalised

    def record_answer(
        self,
        assignment_id: str,
        key: AnswerKey,
        value: AnswerValue,
        reason: str | None = None,
    ) -> AnswerRecord:
        """Store one answer (a new revision) in one committed transaction.

        Parameters
        ----------
        assignment_id
            The assignment answered.
        key
            Question, and finding / side for per-finding / per-side questions.
        value
            See ``studies.api``; None clears the answer (kept as a revision).
        reason
            Why the answer changes; required when the assignment is already completed (the
            reader went back to it), stored with the revision and in its ``answer_set`` event.

        Returns
        -------
        AnswerRecord
            The stored value and its revision number (unchanged if the value is the same).

        Raises
        ------
        StudyError
            Unknown assignment, question, finding or side; a value the question does not accept;
            a locked or finished session; a change to a completed assignment without a reason.
        """
        question = self.protocol.question(key.question_id)
        self._check_key(question, key)
        normalised = validate_value(question, value)
        _check_series(question, key, normalised)
        if question.type in MEASUREMENT_TYPES and isinstance(normalised, dict):
            normalised = self.measure_answer(assignment_id, key, normalised)
        value_json = canonical_json(normalised)
        now = self.now()
        finding_id, side = key.finding_id or NONE_KEY, key.side or NONE_KEY
        # The hot path of the viewer: plain Core statements, one short write transaction.
        with self.writing() as s:
            target = s.execute(
                select(
                    Assignment.left_arm_pk,
                    Assignment.right_arm_pk,
                    ReadingSession.index.label("session_index"),
                    ReadingSession.reader_pk,
                    ReadingSession.not_before,
                    ReadingSession.finished_at,
                    Reader.reader_id,
                    Assignment.completed_at,
                    Assignment.position,
                )
                .join(ReadingSession, ReadingSession.id == Assignment.session_pk)
                .join(Reader, Reader.id == ReadingSession.reader_pk)
                .where(Assignment.id == assignment_id)
            ).first()
            if target is None:
                raise StudyError(f"{self._source}: unknown assignment {assignment_id!r}")
            self._check_open(
                s,
                reader_id=target.reader_id,
                reader_pk=target.reader_pk,
                index=target.session_index,
                not_before=target.not_before,
                finished=target.finished_at is not None,
            )
            arm_value = None
            if question.type == "preference" and self.origin != "package":
                # A package cannot know the arms: its preferences are mapped at merge.
                arm_value = preference_arm(
                    normalised,
                    self._arm_codes.get(target.left_arm_pk or ""),
                    self._arm_codes.get(target.right_arm_pk or ""),
                )
            current = s.execute(
                select(
                    Answer.id, Answer.value_json, Answer.revision, Answer.last_answered_at
                ).where(
                    Answer.assignment_pk == assignment_id,
                    Answer.question_id == key.question_id,
                    Answer.finding_id == finding_id,
                    Answer.side == side,
                )
            ).first()
            if current is not None and current.value_json == value_json:
                return AnswerRecord(key, normalised, current.revision, current.last_answered_at)
            if target.completed_at is not None and not (reason and reason.strip()):
                raise StudyError(
                    f"assignment {assignment_id} (reader {target.reader_id!r}, session "
                    f"{target.session_index}, case {target.position}) is completed: changing "
                    f"{format_key(key)} needs a reason"
                )
            reason = reason.strip() if reason and reason.strip() else None
            revision = 1 if current is None else current.revision + 1
            answer_pk = new_id() if current is None else current.id
            if current is None:
                s.execute(
                    insert(Answer).values(
                        id=answer_pk,
                        assignment_pk=assignment_id,
                        question_id=key.question_id,
                        finding_id=finding_id,
                        side=side,
                        value_json=value_json,
                        arm_value=arm_value,
                        revision=revision,
                        first_answered_at=now,
                        last_answered_at=now,
                    )
                )
            else:
                s.execute(
                    update(Answer)
                    .where(Answer.id == answer_pk)
                    .values(
                        value_json=value_json,
                        arm_value=arm_value,
                        revision=revision,
                        last_answered_at=now,
                    )
                )
            revision_id = new_id()
            s.execute(
                insert(AnswerRevision).values(
                    id=revision_id,
                    answer_pk=answer_pk,
                    revision=revision,
                    value_json=value_json,
                    arm_value=arm_value,
                    recorded_at=now,
                    reason=reason,
                )
            )
            record_rows(s, Answer, [answer_pk])
            record_rows(s, AnswerRevision, [revision_id])
            payload: dict[str, object] = {
                "question": key.question_id,
                "finding": key.finding_id,
                "side": key.side,
                "value": normalised,
                "revision": revision,
                "revision_id": revision_id,
            }
            if reason is not None:
                payload["reason"] = reason
            append_event(
                s,
                kind="answer_set",
                created_at=now,
                reader_id=target.reader_id,
                assignment_id=assignment_id,
                payload=payload,
            )
            return AnswerRecord(key, normalised, revision, now, reason)

    def measured_image(
        self, assignment_id: str, key: AnswerKey, series_label: str, slice_index: int
    ) -> tuple[str, Path]:
        """The blinded series' opaque id and the file of one slice an answer is drawn on.

        The image is the assignment's own: the arm of a sequential assignment, the arm on the
        key's side of a paired one.
        """
        with self.reading() as s:
            a, _, _ = self._assignment_row(s, assignment_id)
            arm_pk: str | None = a.arm_pk
            if arm_pk is None:
                arm_pk = a.left_arm_pk if key.side != "right" else a.right_arm_pk
            side = self._side_images(s, a.case_pk, arm_pk)
        try:
            series = side.get(series_label)
        except KeyError:
            labels = ", ".join(side.labels)
            raise StudyError(
                f"{format_key(key)}: the case has no series {series_label!r} (it has {labels})"
            ) from None
        if not 0 <= slice_index < len(series.files):
            raise StudyError(
                f"{format_key(key)}: slice {slice_index} is outside series {series_label!r} "
                f"(0..{len(series.files) - 1})"
            )
        return series.series_id, series.files[slice_index]

    def measure_answer(
        self, assignment_id: str, key: AnswerKey, value: dict[str, Any]
    ) -> dict[str, Any]:
        """A drawn answer with what it measures on the assignment's blinded image added.

        Raises
        ------
        StudyError
            Unknown series or slice, an unreadable image, points outside it, an empty ROI.
        """
        series_id, path = self.measured_image(assignment_id, key, value["series"], value["slice"])
        ds = read_source(path)
        pixels = decode_pixels(path, ds)
        spacing = getattr(ds, "PixelSpacing", None)
        pixel_spacing = (float(spacing[0]), float(spacing[1])) if spacing else None
        try:
            measured = measure(pixels, value["shape"], value["points"], pixel_spacing)
        except StudyError as exc:
            raise StudyError(f"{format_key(key)}: {exc}") from None
        geometry = {k: value[k] for k in ("series", "slice", "shape", "points")}
        return {**geometry, "series_id": series_id, **measured.as_dict()}

    def series_labels(self, assignment_id: str) -> list[str]:
        """The labels of an assignment's series, in hanging order (per-series questions are
        asked once for each)."""
        with self.reading() as s:
            a, _, _ = self._assignment_row(s, assignment_id)
            return self._series_labels(s, a.case_pk)

    def _series_labels(self, s: Session, case_pk: str) -> list[str]:
        labels = s.execute(select(Series.label).where(Series.case_pk == case_pk)).scalars()
        return self.protocol.hanging.order(labels)

    def required_keys(
        self, answers: dict[AnswerKey, AnswerValue], series: Sequence[str] = ()
    ) -> list[AnswerKey]:
        """The answer keys that are required given ``answers`` (show-if rules applied);
        ``series``: the case's series labels (for per-series measurement questions)."""
        needed: list[AnswerKey] = []
        for question in self.protocol.questions:
            if not question.required:
                continue
            for key in self.keys_of(question, series):
                rule = question.show_if
                if rule is not None:
                    ref = self.protocol.question(rule.question)
                    ref_key = AnswerKey(
                        ref.id,
                        key.finding_id if ref.scope == "finding" else None,
                        key.side if ref.scope == "side" else None,
                    )
                    if not rule.holds(answers.get(ref_key)):
                        continue
                needed.append(key)
        return needed

    def keys_of(self, question: Question, series: Sequence[str] = ()) -> list[AnswerKey]:
        """Every answer key a question has on one assignment (per finding / per side; a
        per-series measurement question once per label in ``series``, the label in the key's
        ``finding_id``)."""
        if question.per == "series" and question.type in MEASUREMENT_TYPES:
            sides: tuple[Side | None, ...] = (
                ("left", "right") if question.scope == "side" else (None,)
            )
            return [AnswerKey(question.id, label, side) for label in series for side in sides]
        if question.scope == "finding":
            return [AnswerKey(question.id, f) for f in self.protocol.question_findings(question)]
        if question.scope == "side":
            return [AnswerKey(question.id, None, "left"), AnswerKey(question.id, None, "right")]
        return [AnswerKey(question.id)]

    def missing_required(self, assignment_id: str) -> list[AnswerKey]:
        """The required answers an assignment still lacks (questions hidden by show-if skipped)."""
        with self.reading() as s:
            a, _, _ = self._assignment_row(s, assignment_id)
            answers = self._answers(s, a.id)
            labels = self._series_labels(s, a.case_pk)
        return [k for k in self.required_keys(answers, labels) if answers.get(k) is None]

    def complete_assignment(self, assignment_id: str) -> None:
        """Mark an assignment done; when it is the session's last, the session finishes and the
        next session is locked for the washout.

        Raises
        ------
        StudyError
            Required answers are missing (named), or the session is locked or finished.
        """
        now = self.now()
        with self.writing() as s:
            a, session, reader_id = self._assignment_row(s, assignment_id)
            if a.completed_at is not None:
                return
            self._check_writable(s, session, reader_id)
            answers = self._answers(s, a.id)
            labels = self._series_labels(s, a.case_pk)
            missing = [k for k in self.required_keys(answers, labels) if answers.get(k) is None]
            if missing:
                raise StudyError(
                    f"assignment {assignment_id} (reader {reader_id!r}, session {session.index}, "
                    f"case {a.position}): required answers missing: "
                    + ", ".join(format_key(k) for k in missing)
                )
            a.completed_at = now
            s.flush()
            record_rows(s, Assignment, [a.id])
            append_event(
                s,
                kind="assignment_completed",
                created_at=now,
                reader_id=reader_id,
                assignment_id=a.id,
            )
            self.refresh_session(s, session, reader_id, now)

    def refresh_session(
        self, s: Session, session: ReadingSession, reader_id: str, now: datetime
    ) -> None:
        """Finish a session whose assignments are all completed and set the next one's washout.

        The finish time is the last completion; the next session opens by the washout rule of
        :mod:`studies.clock` (00:00 UTC on the finish's UTC date plus ``washout_days``).
        """
        if session.finished_at is not None:
            return
        completed = list(
            s.execute(
                select(Assignment.completed_at).where(Assignment.session_pk == session.id)
            ).scalars()
        )
        if not completed or any(c is None for c in completed):
            return
        finished = max(c for c in completed if c is not None)
        session.finished_at = finished
        following = s.execute(
            select(ReadingSession).where(
                ReadingSession.reader_pk == session.reader_pk,
                ReadingSession.index == session.index + 1,
            )
        ).scalar_one_or_none()
        not_before = None
        if following is not None:
            not_before = washout_not_before(finished, self.protocol.washout_days)
            following.not_before = not_before
        s.flush()
        record_rows(
            s, ReadingSession, [session.id] + ([following.id] if following is not None else [])
        )
        append_event(
            s,
            kind="session_finished",
            created_at=now,
            reader_id=reader_id,
            payload={
                "session": session.index,
                "finished_at": finished.isoformat(),
                "next_not_before": not_before.isoformat() if not_before else None,
            },
        )

    # ---- events and time --------------------------------------------------------------------

    def record_event(
        self,
        reader_id: str,
        kind: str,
        *,
        assignment_id: str | None = None,
        payload: dict[str, object] | None = None,
    ) -> None:
        """Append one viewer event to the hash-chained log (one committed transaction).

        Raises
        ------
        StudyError
            Unknown reader, event kind or assignment, an assignment of another reader, or a
            payload that is not JSON.
        """
        if kind not in EVENT_KINDS:
            raise StudyError(
                f"unknown event kind {kind!r} (expected one of {', '.join(EVENT_KINDS)})"
            )
        self._reader_pk(reader_id)
        try:
            canonical_json(payload or {})
        except (TypeError, ValueError) as exc:
            raise StudyError(f"event {kind!r}: payload is not JSON ({exc})") from None
        now = self.now()
        with self.writing() as s:
            if assignment_id is not None:
                _, _, owner = self._assignment_row(s, assignment_id)
                if owner != reader_id:
                    raise StudyError(
                        f"assignment {assignment_id} belongs to reader {owner!r}, not {reader_id!r}"
                    )
            append_event(
                s,
                kind=kind,
                created_at=now,
                reader_id=reader_id,
                assignment_id=assignment_id,
                payload=payload,
            )

    def active_ms(self, assignment_id: str) -> int:
        """Active reading time of an assignment in milliseconds.

        See :mod:`studies.timing`: open..closed, minus focus lost and idle beyond 60 s.
        """
        with self.reading() as s:
            a, _, reader_id = self._assignment_row(s, assignment_id)
            columns = (
                Event.kind,
                Event.created_at,
                Event.payload_json,
                Event.reader_id,
                Event.assignment_id,
            )
            own = [
                TimedEvent(*row)
                for row in s.execute(
                    select(*columns).where(Event.assignment_id == a.id).order_by(Event.seq)
                )
            ]
            if not own:
                return 0
            others = [
                TimedEvent(*row)
                for row in s.execute(
                    select(*columns)
                    .where(
                        Event.reader_id == reader_id,
                        Event.assignment_id.is_(None),
                        Event.kind.in_(READER_LEVEL_KINDS),
                        Event.created_at >= own[0].at,
                        Event.created_at <= max(e.at for e in own),
                    )
                    .order_by(Event.seq)
                )
            ]
        return active_time_ms(own, others)

    def verify_events(self) -> list[str]:
        """Problems in the event hash chain and answer history ([] when intact)."""
        with self.reading() as s:
            problems = verify_chain(s.execute(select(Event).order_by(Event.seq)).scalars())
            problems += verify_answers(s)
        return problems

    # ---- the study record: anchors, seals, verification -----------------------------------

    def record_head(self) -> Head | None:
        """The newest entry of the study record (None for an empty record)."""
        with self.reading() as s:
            return head(s)

    def publish_anchor(self, at_head: Head, what: str, at: datetime) -> dict[str, Any]:
        """An anchor of ``at_head`` (already committed), added to the anchor log by the key.

        Returns
        -------
        dict
            ``{"study_id", "seq", "hash", "what", "at", "mac"}`` (no ``mac`` without the key):
            what a package manifest or a report keeps, and ``study verify --anchor`` reads.
        """
        anchor = make_anchor(self.key, self.study_id, at_head, what, at)
        if self.key is not None:
            append_anchor(self.key, anchor)
        return anchor

    def anchor(self, what: str, detail: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Record that a coordinator action (a report, say) saw the study as it is now.

        Appends an anchor entry to the record (keyed when the key is here, with the
        operating-system user) and returns the anchor for the action's output to keep: a report
        writes it into ``results.json``; ``study verify --anchor results.json`` checks it.
        """
        now = self.now()
        image = {
            "what": what,
            "detail": dict(detail or {}),
            "os_user": os_user(),
            "at": now.isoformat(timespec="microseconds"),
        }
        with self.writing() as s:
            at_head = append_marker(s, ANCHOR_ENTRY, new_id(), image)
        return self.publish_anchor(at_head, what, now)

    def _known_anchors(self) -> list[dict[str, Any]]:
        # The key folder's anchors are the main study's record; a package has a record of its
        # own (merge checks it against the head the main study logged when packing it).
        if self.key is None or self.key.path is None or self.origin == "package":
            return []
        _, details = read_key_file(self.key.path)
        anchors = []
        created = details.get("anchor")
        if isinstance(created, dict):
            anchors.append({"what": "study create (key file)", **created})
        return anchors + read_anchor_log(self.key)

    def verify(
        self, anchors: Sequence[Mapping[str, Any]] = (), *, images: bool = True
    ) -> VerifyReport:
        """Check the whole study: the event chain, the answer history, the study record
        (against the key, every anchor the key's folder holds and ``anchors``) and the blinded
        image files (against the checksums stored at create).

        Parameters
        ----------
        anchors
            Anchors kept elsewhere (a package manifest, a report's ``results.json``).
        images
            Also read every image file and compare its checksum (the slow part on a big study).

        Returns
        -------
        VerifyReport
            ``problems`` name the table, the row and the field of every change found, and every
            image file that was changed, added or removed.
        """
        with self.reading() as s:
            try:
                with s.begin_nested():
                    problems = verify_chain(s.execute(select(Event).order_by(Event.seq)).scalars())
                    problems += verify_answers(s)
            except (ValueError, TypeError, StatementError) as exc:
                problems = [
                    "event log and answers: a stored value cannot be read "
                    f"({str(exc).splitlines()[0]})"
                ]
            check = verify_record(
                s,
                self.key,
                [*self._known_anchors(), *anchors],
                study_id=self.study_id,
                # a package: what the reader added is written without the key (merge checks it)
                unkeyed_after=0 if self.origin == "package" else None,
            )
            image_problems, image_notes, n_files = self._verify_images(s) if images else ([], [], 0)
            n_events = s.execute(select(func.count()).select_from(Event)).scalar_one()
            n_revisions = s.execute(select(func.count()).select_from(AnswerRevision)).scalar_one()
        return VerifyReport(
            problems=[*problems, *check.problems, *image_problems],
            notes=[*check.notes, *image_notes],
            keyed=self.key is not None,
            n_events=int(n_events),
            n_revisions=int(n_revisions),
            record=check,
            n_image_files=n_files,
        )

    def _verify_images(self, s: Session) -> tuple[list[str], list[str], int]:
        """Problems and notes from comparing every series folder with its stored checksums."""
        rows = s.execute(
            select(Series.opaque_id, Series.folder, Series.files_sha256).order_by(Series.opaque_id)
        ).all()
        problems: list[str] = []
        unchecked = 0
        n_files = 0
        for opaque, folder, stored in rows:
            where = f"series {opaque}"
            if stored is None:
                unchecked += 1
                continue
            try:
                expected = parse_digests(stored, where)
            except StudyError as exc:
                problems.append(str(exc))
                continue
            problems += check_series_files(self.images_dir / folder, expected, where)
            n_files += len(expected)
        notes = (
            [f"{unchecked} series have no image checksums (made before they were recorded)"]
            if unchecked
            else []
        )
        return problems, notes, n_files

    def seal(self) -> int:
        """Vouch for the record entries written without the study key; return how many.

        A coordinator action for a study read on a live database by readers who do not hold
        the key: after checking who wrote them (``study verify`` lists them), the coordinator
        seals them, and ``verify`` accepts them from then on.

        Raises
        ------
        StudyError
            The key is not here, or the study has other problems than unsealed entries.
        """
        if self.key is None:
            raise StudyError(
                f"{self._source}: sealing needs the study key (not found in the key folder; "
                "pass --key)"
            )
        report = self.verify()
        others = [p for p in report.problems if "nobody vouched for them" not in p]
        if others:
            raise StudyError(
                f"{self._source}: not sealed: the study has {len(others)} other problem(s); "
                f"first: {others[0]}"
            )
        now = self.now()
        with self.writing() as s:
            sealed_to = 0
            for image_json in s.execute(
                select(RecordEntry.image_json).where(RecordEntry.table_name == SEAL_ENTRY)
            ).scalars():
                sealed_to = max(sealed_to, int(json.loads(image_json)["to"]))
            unkeyed = list(
                s.execute(
                    select(RecordEntry.seq)
                    .where(RecordEntry.mac.is_(None), RecordEntry.seq > sealed_to)
                    .order_by(RecordEntry.seq)
                ).scalars()
            )
            if not unkeyed:
                return 0
            append_event(
                s,
                kind="record_sealed",
                created_at=now,
                payload={"entries": len(unkeyed), "os_user": os_user()},
            )
            at_head = append_marker(
                s,
                SEAL_ENTRY,
                new_id(),
                {
                    "from": unkeyed[0],
                    "to": unkeyed[-1],
                    "n": len(unkeyed),
                    "os_user": os_user(),
                    "at": now.isoformat(timespec="microseconds"),
                },
            )
        self.publish_anchor(at_head, "seal", now)
        return len(unkeyed)


@dataclass(frozen=True)
class VerifyReport:
    """What ``Store.verify`` found."""

    problems: list[str]
    notes: list[str]
    keyed: bool  # checked with the study key
    n_events: int
    n_revisions: int
    record: RecordCheck
    n_image_files: int = 0  # image files compared with their checksums

    @property
    def ok(self) -> bool:
        """Whether nothing was found."""
        return not self.problems


def preference_arm(value: AnswerValue, left_arm: str | None, right_arm: str | None) -> str | None:
    """The arm a preference names: the arm code on the chosen side, ``"equal"``, or None."""
    if not isinstance(value, str):
        return None
    if value == "left":
        return left_arm
    if value == "right":
        return right_arm
    return value


def format_key(key: AnswerKey) -> str:
    """``question[finding=x]`` / ``question[side=left]`` for messages."""
    if key.finding_id is not None:
        return f"{key.question_id}[finding={key.finding_id}]"
    if key.side is not None:
        return f"{key.question_id}[side={key.side}]"
    return key.question_id


#: What the store adds to a drawn answer (measured on the blinded image).
_MEASURED_KEYS = ("series_id", "mean", "sd", "area_mm2", "n_pixels", "length_mm")


def _validate_measurement(question: Question, value: AnswerValue, q: str) -> dict[str, Any]:
    """A roi / distance answer: its geometry checked, returned in its stored key order."""
    if not isinstance(value, dict):
        raise StudyError(
            f"{q}: expected a drawn shape {{series, slice, shape, points}}, got {value!r}"
        )
    unknown = sorted(set(value) - {"series", "slice", "shape", "points", *_MEASURED_KEYS})
    if unknown:
        raise StudyError(f"{q}: unknown key(s) {', '.join(unknown)} in {value!r}")
    missing = [k for k in ("series", "slice", "shape", "points") if k not in value]
    if missing:
        raise StudyError(f"{q}: the drawn shape lacks {', '.join(missing)}")
    series, index, shape, points = value["series"], value["slice"], value["shape"], value["points"]
    if not isinstance(series, str) or not series:
        raise StudyError(f"{q}: series must be the series label, got {series!r}")
    if isinstance(index, bool) or not isinstance(index, Integral) or int(index) < 0:
        raise StudyError(f"{q}: slice must be a slice index >= 0, got {index!r}")
    allowed = question.roi_shapes
    if shape not in allowed:
        raise StudyError(f"{q}: shape must be one of {', '.join(allowed)}, got {shape!r}")
    if not isinstance(points, list | tuple) or not all(isinstance(p, list | tuple) for p in points):
        raise StudyError(f"{q}: points must be a list of [x, y], got {points!r}")
    try:
        checked = check_points(str(shape), points)
    except StudyError as exc:
        raise StudyError(f"{q}: {exc}") from None
    out: dict[str, Any] = {
        "series": series,
        "slice": int(index),
        "shape": shape,
        "points": checked,
    }
    for key in _MEASURED_KEYS:
        if key in value:
            given = value[key]
            if (
                given is not None
                and key != "series_id"
                and (
                    isinstance(given, bool)
                    or not isinstance(given, Real)
                    or not math.isfinite(float(given))
                )
            ):
                raise StudyError(f"{q}: {key} must be a finite number, got {given!r}")
            out[key] = given
    return out


def _check_series(question: Question, key: AnswerKey, value: AnswerValue) -> None:
    """A per-series measurement is drawn on the series its key names."""
    if (
        question.per == "series"
        and isinstance(value, dict)
        and value.get("series") != key.finding_id
    ):
        raise StudyError(
            f"{format_key(key)}: asked for series {key.finding_id!r}, drawn on "
            f"{value.get('series')!r}"
        )


def validate_value(question: Question, value: AnswerValue) -> AnswerValue:
    """Check an answer value against its question; return it in its stored form.

    Raises
    ------
    StudyError
        Naming the question and the values it accepts.
    """
    if value is None:
        return None
    q = f"question {question.id!r} ({question.type})"
    t = question.type
    if t == "likert":
        assert question.points is not None
        if isinstance(value, bool) or not isinstance(value, Integral):
            raise StudyError(f"{q}: expected an integer 1..{question.points}, got {value!r}")
        if not 1 <= int(value) <= question.points:
            raise StudyError(f"{q}: expected an integer 1..{question.points}, got {value!r}")
        return int(value)
    if t in ("choice", "multi"):
        allowed = [o.value for o in question.options]
        shown = ", ".join(repr(v) for v in allowed)
        if t == "choice":
            if not isinstance(value, str) or value not in allowed:
                raise StudyError(f"{q}: expected one of {shown}, got {value!r}")
            return value
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise StudyError(f"{q}: expected a list of options from {shown}, got {value!r}")
        unknown = [v for v in value if v not in allowed]
        if unknown:
            raise StudyError(f"{q}: expected options from {shown}, got unknown {unknown!r}")
        if len(set(value)) != len(value):
            raise StudyError(f"{q}: an option is selected twice in {value!r}")
        return [v for v in allowed if v in value]
    if t == "boolean":
        if not isinstance(value, bool):
            raise StudyError(f"{q}: expected true or false, got {value!r}")
        return value
    if t == "number":
        if (
            isinstance(value, bool)
            or not isinstance(value, Real)
            or not math.isfinite(float(value))
        ):
            raise StudyError(f"{q}: expected a finite number, got {value!r}")
        number = float(value)
        lo, hi = question.minimum, question.maximum
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            span = f"{lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}"
            raise StudyError(f"{q}: expected a number in {span}, got {value!r}")
        return number
    if t == "text":
        if not isinstance(value, str):
            raise StudyError(f"{q}: expected text, got {value!r}")
        if question.max_length is not None and len(value) > question.max_length:
            raise StudyError(
                f"{q}: expected at most {question.max_length} characters, got {len(value)}"
            )
        return value
    if t == "preference":
        if value not in PREFERENCE_VALUES:
            raise StudyError(f"{q}: expected one of 'left', 'equal', 'right', got {value!r}")
        return value
    if t in MEASUREMENT_TYPES:
        return _validate_measurement(question, value, q)
    raise StudyError(f"{q}: unsupported question type")  # pragma: no cover
