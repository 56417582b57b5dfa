"""Tables out of a study: answers (tidy long), truth, assignments, the unblinding key, events and
MRMC input (list mode for MRMCaov, the .imrmc file for iMRMC); :func:`write_csv` writes any of
them atomically.

The answers table is blinded by default: ``case`` and ``subject`` are export ids (random ids that
appear in no package, no image folder and no DICOM header, so a blinded export joined with a
reader's package unblinds nothing), there is no ``arm`` column and a preference keeps the side
the reader chose. ``unblinded=True`` gives the study's own ids, the arm of every answer, and
preferences mapped to arms.

Every export is logged: its CSV and its ``export_run`` row are written together or not at all,
the row is recorded in the study record, and the record's head is anchored (see
:mod:`studies.record`).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from studies.actor import os_user
from studies.db.models import (
    Answer,
    Arm,
    Assignment,
    Case,
    CaseTruth,
    Event,
    ExportRun,
    Reader,
    ReadingSession,
    Series,
    Subject,
)
from studies.errors import StudyError
from studies.events import append_event
from studies.protocol import MEASUREMENT_TYPES, Measurement
from studies.record import head, record_rows
from studies.store import Store
from studies.timing import TimedEvent, active_times

if TYPE_CHECKING:
    import pandas as pd

ANSWER_COLUMNS = (
    "study",
    "reader",
    "session",
    "position",
    "case",
    "subject",
    "arm",
    "side",
    "question",
    "finding",
    "value",
    "label",
    "first_answered_at",
    "last_answered_at",
    "active_ms",
    "revisions",
)
ASSIGNMENT_COLUMNS = (
    "reader",
    "session",
    "position",
    "case_id",
    "subject_id",
    "arm",
    "side",
    "is_training",
    "completed_at",
    "assignment_id",
)
KEY_COLUMNS = ("opaque_id", "kind", "case_id", "subject_id", "arm")
EVENT_COLUMNS = (
    "seq",
    "event_id",
    "created_at",
    "reader",
    "assignment_id",
    "kind",
    "payload",
    "prev_hash",
    "hash",
)
MRMC_COLUMNS = ("reader", "treatment", "case", "truth", "rating")
MEASUREMENT_COLUMNS = ("case", "reader", "arm", "session", "measurement", "value", "unit")
ROI_COLUMNS = (
    "case",
    "reader",
    "arm",
    "session",
    "side",
    "question",
    "series",
    "series_id",
    "slice",
    "shape",
    "points",
    "mean",
    "sd",
    "area_mm2",
    "length_mm",
    "n_pixels",
    "revision",
)
IMRMC_COLUMNS = ("readerID", "caseID", "modalityID", "score")

#: What ``study export --what`` can write (``mrmcaov`` is ``mrmc`` under the name of the R
#: package that reads it; ``imrmc`` is the iMRMC input file).
EXPORTS = (
    "answers",
    "assignments",
    "key",
    "events",
    "mrmc",
    "mrmcaov",
    "imrmc",
    "measurements",
    "rois",
)


@dataclass(frozen=True)
class _Row:
    """One assignment with everything the exports join onto it."""

    assignment_id: str
    reader: str
    reader_order: int
    session: int
    position: int
    case_id: str
    case_export: str | None
    subject_id: str
    subject_export: str | None
    arm: str | None
    left_arm: str | None
    right_arm: str | None
    is_training: bool
    completed_at: datetime | None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="milliseconds") if value is not None else None


def _assignment_rows(s: Session) -> list[_Row]:
    arm, left, right = aliased(Arm), aliased(Arm), aliased(Arm)
    query = (
        select(
            Assignment.id,
            Reader.reader_id,
            Reader.position,
            ReadingSession.index,
            Assignment.position,
            Case.case_id,
            Case.export_id,
            Subject.subject_id,
            Subject.export_id,
            arm.code,
            left.code,
            right.code,
            Assignment.is_training,
            Assignment.completed_at,
        )
        .join(ReadingSession, ReadingSession.id == Assignment.session_pk)
        .join(Reader, Reader.id == ReadingSession.reader_pk)
        .join(Case, Case.id == Assignment.case_pk)
        .join(Subject, Subject.id == Case.subject_pk)
        .outerjoin(arm, arm.id == Assignment.arm_pk)
        .outerjoin(left, left.id == Assignment.left_arm_pk)
        .outerjoin(right, right.id == Assignment.right_arm_pk)
        .order_by(Reader.position, ReadingSession.index, Assignment.position)
    )
    return [_Row(*cast(tuple[Any, ...], row)) for row in s.execute(query)]


def _frame(records: list[dict[str, Any]], columns: tuple[str, ...]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame.from_records(records, columns=list(columns))


def answers_frame(
    store: Store, *, unblinded: bool = False, include_training: bool = False
) -> pd.DataFrame:
    """Every current answer, one row each (tidy long format).

    Parameters
    ----------
    store
        The open study.
    unblinded
        Use the study's case and subject ids, add the arm, map preferences to arms.
    include_training
        Keep the answers to training cases (left out by default).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`ANSWER_COLUMNS` (``arm`` only when unblinded); cleared answers are left
        out; ``revisions`` counts how often the answer was given or changed.
    """
    protocol = store.protocol
    with store.reading() as s:
        rows = {r.assignment_id: r for r in _assignment_rows(s)}
        times = active_times(
            TimedEvent(*e)
            for e in s.execute(
                select(
                    Event.kind,
                    Event.created_at,
                    Event.payload_json,
                    Event.reader_id,
                    Event.assignment_id,
                ).order_by(Event.seq)
            )
        )
        answers = s.execute(select(Answer)).scalars().all()
    question_order = {q.id: i for i, q in enumerate(protocol.questions)}
    records: list[dict[str, Any]] = []
    for answer in answers:
        row = rows[answer.assignment_pk]
        if row.is_training and not include_training:
            continue
        value = json.loads(answer.value_json)
        if value is None:
            continue
        question = protocol.question(answer.question_id)
        side = answer.side or None
        arm = row.arm
        if side is not None:
            arm = row.left_arm if side == "left" else row.right_arm
        if question.type == "preference" and unblinded:
            value = answer.arm_value or value
        shown = ";".join(value) if isinstance(value, list) else value
        records.append(
            {
                "study": store.study_title,
                "reader": row.reader,
                "session": row.session,
                "position": row.position,
                "case": row.case_id if unblinded else row.case_export,
                "subject": row.subject_id if unblinded else row.subject_export,
                "arm": arm,
                "side": side,
                "question": answer.question_id,
                "finding": answer.finding_id or None,
                "value": shown,
                "label": question.label_for(value),
                "first_answered_at": _iso(answer.first_answered_at),
                "last_answered_at": _iso(answer.last_answered_at),
                "active_ms": times.get(row.assignment_id, 0),
                "revisions": answer.revision,
                "_order": (
                    row.reader_order,
                    row.session,
                    row.position,
                    question_order.get(answer.question_id, 0),
                    answer.finding_id,
                    answer.side,
                ),
            }
        )
    records.sort(key=lambda r: r.pop("_order"))
    columns = ANSWER_COLUMNS if unblinded else tuple(c for c in ANSWER_COLUMNS if c != "arm")
    return _frame(records, columns)


@dataclass(frozen=True)
class DrawnAnswer:
    """One current roi / distance answer with the assignment it belongs to."""

    row: _Row
    arm: str | None
    side: str | None
    question: str
    value: dict[str, Any]
    revision: int


def drawn_answers(store: Store, *, include_training: bool = False) -> list[DrawnAnswer]:
    """Every current roi / distance answer (deleted ones left out), in reading order."""
    protocol = store.protocol
    drawn = {q.id for q in protocol.questions if q.type in MEASUREMENT_TYPES}
    if not drawn:
        return []
    with store.reading() as s:
        rows = {r.assignment_id: r for r in _assignment_rows(s)}
        answers = (
            s.execute(select(Answer).where(Answer.question_id.in_(sorted(drawn)))).scalars().all()
        )
    order = {q.id: i for i, q in enumerate(protocol.questions)}
    out: list[tuple[tuple[Any, ...], DrawnAnswer]] = []
    for answer in answers:
        row = rows[answer.assignment_pk]
        if row.is_training and not include_training:
            continue
        value = json.loads(answer.value_json)
        if not isinstance(value, dict):
            continue
        side = answer.side or None
        arm = row.arm
        if side is not None:
            arm = row.left_arm if side == "left" else row.right_arm
        item = DrawnAnswer(row, arm, side, answer.question_id, value, answer.revision)
        sort = (row.reader_order, row.session, row.position, order[answer.question_id], side or "")
        out.append((sort, item))
    out.sort(key=lambda pair: pair[0])
    return [item for _, item in out]


def roi_frame(store: Store, *, unblinded: bool = False) -> pd.DataFrame:
    """Every current ROI / ruler with its geometry and values, one row each.

    Columns :data:`ROI_COLUMNS`: ``points`` is JSON ``[[x, y], ...]`` in image pixel coordinates
    (see :mod:`studies.roi_stats`), ``series`` the series' neutral label and ``slice`` its
    0-based index. Blinded (the default): export case ids, no ``arm`` and no ``series_id`` (the
    blinded series' opaque id is in the reader's package). Unblinded: the study's case ids,
    the arm and the opaque id of the series measured.
    """
    records = []
    for item in drawn_answers(store):
        v, row = item.value, item.row
        records.append(
            {
                "case": row.case_id if unblinded else row.case_export,
                "reader": row.reader,
                "arm": item.arm,
                "session": row.session,
                "side": item.side,
                "question": item.question,
                "series": v["series"],
                "series_id": v.get("series_id"),
                "slice": v["slice"],
                "shape": v["shape"],
                "points": json.dumps(v["points"]),
                "mean": v.get("mean"),
                "sd": v.get("sd"),
                "area_mm2": v.get("area_mm2"),
                "length_mm": v.get("length_mm"),
                "n_pixels": v.get("n_pixels"),
                "revision": item.revision,
            }
        )
    hidden = () if unblinded else ("arm", "series_id")
    return _frame(records, tuple(c for c in ROI_COLUMNS if c not in hidden))


def measurement_value(measurement: Measurement, rois: dict[str, dict[str, Any]]) -> float | None:
    """One protocol measurement from the ROIs of one read (question id -> stored value); None
    when an ROI it needs is missing or its background SD is 0."""
    needed = [rois.get(q) for q in measurement.questions]
    if any(v is None for v in needed):
        return None
    roi = rois[measurement.roi]
    kind = measurement.kind
    key = {"mean": "mean", "sd": "sd", "area": "area_mm2", "distance": "length_mm"}.get(kind)
    if key is not None:
        value = roi.get(key)
        return None if value is None else float(value)
    assert measurement.background is not None
    noise = rois[measurement.background].get("sd")
    if not noise:
        return None
    if kind == "snr":
        return float(roi["mean"]) / float(noise)
    assert measurement.roi_b is not None
    return abs(float(roi["mean"]) - float(rois[measurement.roi_b]["mean"])) / float(noise)


def measurements_frame(store: Store, *, unblinded: bool = True) -> pd.DataFrame:
    """The protocol's ``[[measurements]]``, one row per (reader, case, arm, session,
    measurement), from the latest revision of each ROI.

    SNR = mean(tissue) / SD(background), CNR = |mean(a) - mean(b)| / SD(background), both from
    ROIs of the same read (the same reader, case, session and image); mean, SD, area (mm2) and
    distance (mm) as measured. A measurement whose ROIs are not all drawn is left out. A
    measurement that reads per-series ROIs gets one row per series, named
    ``<measurement>@<series label>`` (a per-case ROI it reads, e.g. the background, is shared).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`MEASUREMENT_COLUMNS`. Blinded (``unblinded=False``): export case ids,
        and ``side`` in place of ``arm`` (None in the sequential design).
    """
    protocol = store.protocol
    per_series = {q.id for q in protocol.questions if q.per == "series"}
    reads: dict[tuple[str, str | None], tuple[DrawnAnswer, dict[str, dict[str, Any]]]] = {}
    series_rois: dict[tuple[str, str | None], dict[str, dict[str, dict[str, Any]]]] = {}
    for item in drawn_answers(store):
        key = (item.row.assignment_id, item.side)
        reads.setdefault(key, (item, {}))
        if item.question in per_series:
            by_series = series_rois.setdefault(key, {})
            by_series.setdefault(item.value["series"], {})[item.question] = item.value
        else:
            reads[key][1][item.question] = item.value
    records = []
    for key, (first, rois) in reads.items():
        for m in protocol.measurements:
            # a measurement of per-series ROIs: one value per series, named measurement@series
            if set(m.questions) & per_series:
                named = [
                    (f"{m.id}@{label}", {**rois, **extra})
                    for label, extra in sorted(series_rois.get(key, {}).items())
                ]
            else:
                named = [(m.id, rois)]
            for name, available in named:
                value = measurement_value(m, available)
                if value is None:
                    continue
                row = first.row
                records.append(
                    {
                        "case": row.case_id if unblinded else row.case_export,
                        "reader": row.reader,
                        "arm": first.arm if unblinded else first.side,
                        "session": row.session,
                        "measurement": name,
                        "value": value,
                        "unit": m.unit,
                    }
                )
    columns = MEASUREMENT_COLUMNS
    frame = _frame(records, columns)
    if not unblinded:
        frame = frame.rename(columns={"arm": "side"})
    return frame


def truth_frame(store: Store) -> pd.DataFrame:
    """The reference standard from CASES.csv: ``case, finding, truth`` (known values only)."""
    with store.reading() as s:
        rows = s.execute(
            select(Case.case_id, CaseTruth.finding_id, CaseTruth.truth)
            .join(Case, Case.id == CaseTruth.case_pk)
            .where(CaseTruth.truth.is_not(None))
            .order_by(Case.case_id, CaseTruth.finding_id)
        ).all()
    return _frame(
        [{"case": c, "finding": f, "truth": t} for c, f, t in rows if t is not None],
        ("case", "finding", "truth"),
    )


def assignments_frame(store: Store) -> pd.DataFrame:
    """Who reads what, where (unblinded): one row per shown series (two per paired read)."""
    with store.reading() as s:
        rows = _assignment_rows(s)
    records: list[dict[str, Any]] = []
    for row in rows:
        base = {
            "reader": row.reader,
            "session": row.session,
            "position": row.position,
            "case_id": row.case_id,
            "subject_id": row.subject_id,
            "is_training": row.is_training,
            "completed_at": _iso(row.completed_at),
            "assignment_id": row.assignment_id,
        }
        if row.arm is not None:
            records.append({**base, "arm": row.arm, "side": None})
        else:
            records.append({**base, "arm": row.left_arm, "side": "left"})
            records.append({**base, "arm": row.right_arm, "side": "right"})
    return _frame(records, ASSIGNMENT_COLUMNS)


def key_frame(store: Store) -> pd.DataFrame:
    """The unblinding key: every opaque id (series, case, subject) and what it stands for."""
    with store.reading() as s:
        series = s.execute(
            select(Series.opaque_id, Case.case_id, Subject.subject_id, Arm.code)
            .join(Case, Case.id == Series.case_pk)
            .join(Subject, Subject.id == Case.subject_pk)
            .join(Arm, Arm.id == Series.arm_pk)
            .order_by(Case.case_id, Arm.code)
        ).all()
        cases = s.execute(
            select(Case.opaque_id, Case.case_id, Subject.subject_id)
            .join(Subject, Subject.id == Case.subject_pk)
            .order_by(Case.case_id)
        ).all()
        subjects = s.execute(
            select(Subject.opaque_id, Subject.subject_id).order_by(Subject.subject_id)
        ).all()
    records: list[dict[str, Any]] = [
        {"opaque_id": o, "kind": "series", "case_id": c, "subject_id": p, "arm": a}
        for o, c, p, a in series
    ]
    records += [
        {"opaque_id": o, "kind": "case", "case_id": c, "subject_id": p, "arm": None}
        for o, c, p in cases
    ]
    records += [
        {"opaque_id": o, "kind": "subject", "case_id": None, "subject_id": p, "arm": None}
        for o, p in subjects
    ]
    return _frame(records, KEY_COLUMNS)


def events_frame(store: Store) -> pd.DataFrame:
    """The event log in chain order, with its hashes (verifiable outside the tool)."""
    with store.reading() as s:
        events = s.execute(select(Event).order_by(Event.seq)).scalars().all()
    return _frame(
        [
            {
                "seq": e.seq,
                "event_id": e.id,
                "created_at": e.created_at.isoformat(timespec="microseconds"),
                "reader": e.reader_id,
                "assignment_id": e.assignment_id,
                "kind": e.kind,
                "payload": e.payload_json,
                "prev_hash": e.prev_hash,
                "hash": e.hash,
            }
            for e in events
        ],
        EVENT_COLUMNS,
    )


def mrmc_frame(store: Store, finding: str, *, question: str | None = None) -> pd.DataFrame:
    """List-mode MRMC input for one finding: ``reader,treatment,case,truth,rating``.

    The layout R's MRMCaov reads directly (its example data sets ``VanDyke`` and ``Franken``
    have these columns; ``mrmc(empirical_auc(truth, rating), treatment, reader, case, data)``),
    as does ``blindreader analyze mrmc``; for iMRMC see :func:`imrmc_text`. Treatment is the arm
    code, rating the grade of a per-finding ordinal question (default: the protocol's
    interchangeability question, else its first per-finding likert question). Training cases and
    cases without known truth are left out.

    Raises
    ------
    StudyError
        The design is not sequential, the finding or question is unknown, or CASES.csv had no
        truth for the finding.
    """
    protocol = store.protocol
    if protocol.design != "sequential":
        raise StudyError(
            "mrmc export needs the sequential design (each case read on each arm); "
            f"this study is {protocol.design}"
        )
    protocol.finding(finding)
    if question is None:
        if protocol.interchangeability is not None:
            question = protocol.interchangeability.question
        else:
            candidates = [
                q.id for q in protocol.questions if q.scope == "finding" and q.type == "likert"
            ]
            if not candidates:
                raise StudyError("mrmc export needs a per-finding likert question")
            question = candidates[0]
    q = protocol.question(question)
    if finding not in protocol.question_findings(q):
        raise StudyError(f"question {question!r} is not asked for finding {finding!r}")
    truth = truth_frame(store)
    truth = truth[truth["finding"] == finding]
    if truth.empty:
        raise StudyError(
            f"no truth for finding {finding!r}: CASES.csv needs a truth_{finding} column "
            "with 0/1 values"
        )
    known = dict(zip(truth["case"], truth["truth"], strict=True))
    answers = answers_frame(store, unblinded=True)
    answers = answers[(answers["question"] == question) & (answers["finding"] == finding)]
    records = [
        {
            "reader": reader,
            "treatment": arm,
            "case": case,
            "truth": int(known[case]),
            "rating": int(value),
        }
        for reader, arm, case, value in zip(
            answers["reader"], answers["arm"], answers["case"], answers["value"], strict=True
        )
        if case in known
    ]
    return _frame(records, MRMC_COLUMNS)


def imrmc_frame(store: Store, finding: str, *, question: str | None = None) -> pd.DataFrame:
    """The iMRMC rows of one finding: ``readerID, caseID, modalityID, score``.

    Truth rows first (``readerID`` -1, ``modalityID`` 0, ``score`` the 0/1 truth), then every
    read (the arm code as ``modalityID``, the grade as ``score``). Case ids are numbered 1..K in
    case-id order, because the .imrmc readers (iMRMC, RJafroc's ``DfReadDataFile(format =
    "iMRMC")``) want whole-number case ids; :func:`imrmc_text` lists the numbering in its header.
    """
    import pandas as pd

    listed = mrmc_frame(store, finding, question=question)
    cases = sorted(set(listed["case"]))
    number = {case: i + 1 for i, case in enumerate(cases)}
    truth = listed.drop_duplicates("case").set_index("case")["truth"]
    rows = [{"readerID": -1, "caseID": number[c], "modalityID": 0, "score": int(truth[c])}
            for c in cases]  # fmt: skip
    rows += [
        {"readerID": r, "caseID": number[c], "modalityID": t, "score": v}
        for r, t, c, v in zip(
            listed["reader"], listed["treatment"], listed["case"], listed["rating"], strict=True
        )
    ]
    frame = pd.DataFrame.from_records(rows, columns=list(IMRMC_COLUMNS))
    frame.attrs["case_numbers"] = number
    return frame


def imrmc_text(store: Store, finding: str, *, question: str | None = None) -> str:
    """The iMRMC input file (``.imrmc``) of one finding: a description, ``NR``, ``N0``, ``N1``,
    ``NM``, then ``BEGIN DATA:`` and the rows of :func:`imrmc_frame`."""
    frame = imrmc_frame(store, finding, question=question)
    truth = frame[frame["readerID"] == -1]
    reads = frame[frame["readerID"] != -1]
    number: dict[str, int] = frame.attrs["case_numbers"]
    lines = [
        f"{store.study_title}: finding {finding}, exported by blindreader",
        "Case numbers (caseID = study case id): "
        + "; ".join(f"{n} = {case}" for case, n in number.items()),
        "",
        f"NR: {reads['readerID'].nunique()}",
        f"N0: {int((truth['score'] == 0).sum())}",
        f"N1: {int((truth['score'] == 1).sum())}",
        f"NM: {reads['modalityID'].nunique()}",
        "",
        "BEGIN DATA:",
    ]
    lines += [
        f"{r},{c},{m},{s}"
        for r, c, m, s in zip(
            frame["readerID"], frame["caseID"], frame["modalityID"], frame["score"], strict=True
        )
    ]
    return "\n".join(lines) + "\n"


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False, lineterminator="\n").encode("utf-8")


def _write_temporary(data: bytes, path: Path) -> Path:
    """``data`` in a synced temporary file beside ``path`` (StudyError when it cannot be)."""
    if not path.parent.is_dir():
        raise StudyError(f"{path.parent}: folder not found (for {path.name})")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise StudyError(f"{path}: cannot write ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise StudyError(f"{path}: cannot write ({exc.strerror}); nothing was written") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def write_csv(frame: pd.DataFrame, path: Path | str) -> str:
    """Write a table as CSV atomically (temporary file, fsync, rename); return its sha256."""
    path = Path(path)
    data = _csv_bytes(frame)
    tmp = _write_temporary(data, path)
    try:
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StudyError(f"{path}: cannot write ({exc.strerror})") from None
    return hashlib.sha256(data).hexdigest()


def record_export(
    s: Session,
    *,
    what: str,
    path: Path,
    unblinded: bool,
    n_rows: int,
    sha256: str,
    now: datetime,
) -> None:
    """Log an export in the write transaction ``s``: its ``export_run`` row (in the study
    record) and its ``export_written`` event with the operating-system user."""
    run = ExportRun(
        what=what,
        path=str(path.resolve()),
        unblinded=unblinded,
        n_rows=n_rows,
        sha256=sha256,
        created_at=now,
    )
    s.add(run)
    s.flush()
    record_rows(s, ExportRun, [run.id])
    append_event(
        s,
        kind="export_written",
        created_at=now,
        payload={
            "what": what,
            "unblinded": unblinded,
            "rows": n_rows,
            "sha256": sha256,
            "export_run": run.id,
            "os_user": os_user(),
        },
    )


def export(
    store: Store,
    what: str,
    out: Path | str,
    *,
    unblinded: bool = False,
    finding: str | None = None,
) -> int:
    """Build one export, write it to ``out`` and log it in the study; return the row count.

    The CSV and its ``export_run`` row are written together or not at all: the file is written
    under a temporary name, the row is inserted, the file renamed into place, and only then is
    the transaction committed; if the commit fails (disk full) the file is taken back (a file
    that was at ``out`` before is restored). The export is an anchor of the study record.

    Raises
    ------
    StudyError
        Unknown ``what``; ``mrmc`` without ``finding``; a reader's package; a database or file
        error (nothing written); see the frame functions.
    """
    if what not in EXPORTS:
        raise StudyError(f"unknown export {what!r} (expected one of {', '.join(EXPORTS)})")
    if store.origin == "package":
        raise StudyError(
            f"{store.source}: a reader's package; export from the main study after `study merge`"
        )
    if what == "answers":
        frame = answers_frame(store, unblinded=unblinded)
    elif what == "assignments":
        frame = assignments_frame(store)
    elif what == "key":
        frame = key_frame(store)
    elif what == "events":
        frame = events_frame(store)
    elif what == "measurements":
        frame = measurements_frame(store, unblinded=unblinded)
    elif what == "rois":
        frame = roi_frame(store, unblinded=unblinded)
    else:
        if finding is None:
            known = ", ".join(f.id for f in store.protocol.findings) or "none"
            raise StudyError(f"--what {what} needs --finding (findings: {known})")
        frame = imrmc_frame(store, finding) if what == "imrmc" else mrmc_frame(store, finding)
    out = Path(out)
    data = imrmc_text(store, str(finding)).encode("utf-8") if what == "imrmc" else _csv_bytes(frame)
    digest = hashlib.sha256(data).hexdigest()
    tmp = _write_temporary(data, out)
    backup: Path | None = None
    placed = False
    now = store.now()
    is_unblinded = unblinded or what in ("assignments", "key", "mrmc", "mrmcaov", "imrmc")
    try:
        with store.writing() as s:
            record_export(
                s, what=what, path=out, unblinded=is_unblinded, n_rows=len(frame), sha256=digest,
                now=now,
            )  # fmt: skip
            at_head = head(s)
            if out.exists():
                backup = out.with_name(f".{out.name}.{secrets.token_hex(4)}.previous")
                os.link(out, backup)
            os.replace(tmp, out)
            placed = True
    except BaseException:
        if placed:
            if backup is not None:
                os.replace(backup, out)
                backup = None
            else:
                out.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if backup is not None:
            backup.unlink(missing_ok=True)
    if at_head is not None:
        store.publish_anchor(at_head, f"export {what}{' (unblinded)' if is_unblinded else ''}", now)
    return len(frame)


__all__ = [
    "ANSWER_COLUMNS",
    "EXPORTS",
    "IMRMC_COLUMNS",
    "MEASUREMENT_COLUMNS",
    "MRMC_COLUMNS",
    "ROI_COLUMNS",
    "DrawnAnswer",
    "answers_frame",
    "assignments_frame",
    "drawn_answers",
    "events_frame",
    "export",
    "imrmc_frame",
    "imrmc_text",
    "key_frame",
    "measurement_value",
    "measurements_frame",
    "mrmc_frame",
    "record_export",
    "roi_frame",
    "truth_frame",
    "write_csv",
]
