"""What a reading package holds, row by row: built by ``pack``, rebuilt and compared by ``merge``.

A package carries no arm. Its database has no arm code, description or series-to-arm mapping:
each (case, arm) a reader is shown is a *stand-in* arm row with a random code and no description,
used by that case only, so the stand-ins say which series belong together (the series of one
case on one side) and nothing across cases. Preferences are stored by side and mapped to arms in
the main study at merge. Cases and subjects go by their opaque ids, with no export id (the
blinded export's ids are in no package), no truth, no other reader, and a protocol redacted to
match (:func:`redact_protocol`): arms renamed ``arm1``, ``arm2``... with a neutral description,
only this reader, training cases by their opaque ids, seed 0, and the analysis-only sections
(``interchangeability``, ``analysis``) left out.

``package_rows`` computes the rows a package must hold from the main study and the stand-in
mapping the main study keeps in ``package_log``; ``pack`` writes exactly these rows (in a random
order), ``merge`` compares a returned package with them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import tomli_w
from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from studies.api import EVENT_KINDS
from studies.canonical import canonical_json
from studies.db.models import (
    Answer,
    AnswerRevision,
    Assignment,
    Case,
    Finding,
    Question,
    Reader,
    ReadingSession,
    Series,
    Study,
    Subject,
)
from studies.protocol import Protocol, parse_protocol, protocol_sha256

PACKAGE_FORMAT = "blindreader-package/2"
MANIFEST = "manifest.json"
PACKAGE_DB = "study.sqlite"
PACKAGE_IMAGES = "study_images"

#: Protocol sections only the analysis uses; a package leaves them out (they may name arms).
ANALYSIS_SECTIONS = ("interchangeability", "analysis")

#: Events a package may carry: the viewer's, and those the store writes while a reader reads.
PACKAGE_EVENT_KINDS = (
    *EVENT_KINDS,
    "assignment_completed",
    "session_finished",
    "signed_in",
    "sign_in_refused",
)

#: Columns a reader's work changes in a package (everything else must stay as packed).
MUTABLE_COLUMNS: Mapping[str, frozenset[str]] = {
    "reading_session": frozenset({"not_before", "finished_at"}),
    "assignment": frozenset({"completed_at"}),
}

#: Tables a package holds that are fixed at pack time, parents first.
STATIC_TABLES = (
    "study",
    "arm",
    "finding",
    "question",
    "subject",
    "case",
    "series",
    "reader",
    "reading_session",
    "assignment",
)

#: Tables a package must leave empty.
EMPTY_TABLES = ("case_truth", "export_run", "merge_log", "package_log")


def redact_protocol(
    protocol: Protocol, reader_id: str, training_ids: Mapping[str, str]
) -> tuple[Protocol, str]:
    """The protocol as one reader's package holds it, and its TOML text.

    Parameters
    ----------
    protocol
        The main study's protocol.
    reader_id
        The package's reader (the only reader kept).
    training_ids
        ``case_id -> opaque id`` of the training cases.
    """
    data = protocol.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["seed"] = 0
    data["title"] = neutral_title(protocol.title, protocol)
    data["arms"] = [
        {"code": f"arm{i + 1}", "description": "blinded", "reference": i == 0}
        for i in range(len(protocol.arms))
    ]
    data["readers"] = [r for r in data["readers"] if r["id"] == reader_id]
    data["training_cases"] = [training_ids[c] for c in protocol.training_cases]
    for name in ANALYSIS_SECTIONS:
        field = Protocol.model_fields.get(name)
        if name in data and field is not None and not field.is_required():
            del data[name]
    text = tomli_w.dumps(data)
    return parse_protocol(text, "the redacted protocol"), text


NEUTRAL_TITLE = "Reader study"


def neutral_title(title: str, protocol: Protocol) -> str:
    """The study title, or a neutral one when it names an arm (by code or description)."""
    for arm in protocol.arms:
        for term in (arm.code, arm.description):
            pattern = r"(?<![A-Za-z0-9])" + re.escape(term.strip()) + r"(?![A-Za-z0-9])"
            if term.strip() and re.search(pattern, title, flags=re.IGNORECASE):
                return NEUTRAL_TITLE
    return title


def protocol_digest(protocol: Protocol) -> str:
    """A digest of what a protocol says (not of how its TOML is written)."""
    dumped = protocol.model_dump(mode="json", by_alias=True, exclude_none=True)
    return hashlib.sha256(canonical_json(dumped).encode("utf-8")).hexdigest()


def _rows(s: Session, model: type[Any], *where: Any) -> list[dict[str, Any]]:
    table = model.__table__
    assert isinstance(table, Table)
    return [dict(r._mapping) for r in s.execute(select(table).where(*where))]


def reader_scope(s: Session, reader_id: str) -> dict[str, Any]:
    """The main study's rows of one reader: reader, sessions, assignments and their cases."""
    reader = _rows(s, Reader, Reader.reader_id == reader_id)
    if not reader:
        raise LookupError(reader_id)
    sessions = _rows(s, ReadingSession, ReadingSession.reader_pk == reader[0]["id"])
    assignments = _rows(s, Assignment, Assignment.session_pk.in_([r["id"] for r in sessions]))
    return {"reader": reader[0], "sessions": sessions, "assignments": assignments}


def shown_pairs(assignments: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Every (case pk, arm pk) the assignments show, in a stable order."""
    pairs = {
        (a["case_pk"], a[column])
        for a in assignments
        for column in ("arm_pk", "left_arm_pk", "right_arm_pk")
        if a[column] is not None
    }
    return sorted(pairs)


def package_rows(
    s: Session, reader_id: str, stand_ins: Mapping[str, tuple[str, str, str]]
) -> tuple[dict[str, list[dict[str, Any]]], str]:
    """The rows a package of ``reader_id`` holds, computed from the main study.

    Parameters
    ----------
    s
        A read session on the main study.
    reader_id
        The package's reader.
    stand_ins
        ``stand-in arm id -> (case pk, arm pk, stand-in code)``, one per shown (case, arm).

    Returns
    -------
    dict, str
        Rows per table (answers and revisions as given to the reader, events excluded) and the
        redacted protocol's TOML text.
    """
    scope = reader_scope(s, reader_id)
    assignments = scope["assignments"]
    by_pair = {(case_pk, arm_pk): sid for sid, (case_pk, arm_pk, _) in stand_ins.items()}
    case_pks = sorted({a["case_pk"] for a in assignments})
    cases = _rows(s, Case, Case.id.in_(case_pks))
    subjects = _rows(s, Subject, Subject.id.in_(sorted({c["subject_pk"] for c in cases})))
    study = _rows(s, Study)[0]
    protocol = parse_protocol(study["protocol_toml"], "the study's protocol")
    training = {
        c["case_id"]: c["opaque_id"] for c in cases if c["case_id"] in protocol.training_cases
    }
    missing = [c for c in protocol.training_cases if c not in training]
    if missing:  # training cases this reader is not assigned: named by a neutral stand-in
        training.update({c: f"training-{i + 1}" for i, c in enumerate(missing)})
    _, toml_text = redact_protocol(protocol, reader_id, training)
    study.update(
        title=neutral_title(study["title"], protocol),
        origin="package",
        images_dir=PACKAGE_IMAGES,
        protocol_toml=toml_text,
        protocol_sha256=protocol_sha256(toml_text),
        seed=0,
    )
    arms = [
        {
            "id": sid,
            "study_id": study["id"],
            "code": code,
            "description": "",
            "reference": False,
        }
        for sid, (_, _, code) in sorted(stand_ins.items())
    ]
    series = [
        {**row, "arm_pk": by_pair[(row["case_pk"], row["arm_pk"])]}
        for row in _rows(s, Series, Series.case_pk.in_(case_pks))
        if (row["case_pk"], row["arm_pk"]) in by_pair
    ]
    packed_assignments = []
    for a in assignments:
        row = dict(a)
        for column in ("arm_pk", "left_arm_pk", "right_arm_pk"):
            if row[column] is not None:
                row[column] = by_pair[(row["case_pk"], row[column])]
        packed_assignments.append(row)
    answers = _rows(s, Answer, Answer.assignment_pk.in_([a["id"] for a in assignments]))
    revisions = _rows(s, AnswerRevision, AnswerRevision.answer_pk.in_([a["id"] for a in answers]))
    rows: dict[str, list[dict[str, Any]]] = {
        "study": [study],
        "arm": arms,
        "finding": _rows(s, Finding),
        "question": _rows(s, Question),
        "subject": [{**r, "subject_id": r["opaque_id"], "export_id": None} for r in subjects],
        "case": [{**c, "case_id": c["opaque_id"], "export_id": None} for c in cases],
        "series": series,
        "reader": [scope["reader"]],
        "reading_session": scope["sessions"],
        "assignment": packed_assignments,
        "answer": [{**a, "arm_value": None} for a in answers],
        "answer_revision": [{**r, "arm_value": None} for r in revisions],
    }
    return rows, toml_text
