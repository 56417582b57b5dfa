"""The study record: tamper evidence for everything that decides a reader study's verdict.

Threat model
------------
*Who*: anyone who can read and write the study database (``study.sqlite``, or the PostgreSQL
tables) or a reader's package, with ``sqlite3``, a hex editor or our own code, but who does not
hold the coordinator's study key (:mod:`studies.study_key`, a file kept outside the database).

*What is protected*: everything that decides the verdict: the protocol, arms, cases, subjects,
series and their arm key, truth, readers (and their passphrase hashes), sessions and washout
dates, assignments (order, sides), answers with every revision and its time, events, and the log
of creates, packs, merges, exports and unblindings. Concretely: every row of every table of
:mod:`studies.db.models` except this record itself and the schema bookkeeping
(:data:`UNRECORDED_TABLES`), with every column, including columns added by later migrations.

*The promise*: such a person cannot change, add, delete or reorder any of it without
``study verify`` (run where the key is) reporting it and naming what changed: the table, the row
(in words: "assignment of reader R1, session 2, position 7") and the field, with the stored and
the recorded value.

How
---
Every write of such a row appends an *entry* to the ``record`` table: the canonical JSON image of
the whole row as stored after the write (read back from the database, so every column counts),
numbered (``seq`` 1, 2, ...) and chained (``hash = sha256(prev_hash + entry)``). A writer that
holds the study key adds ``mac = HMAC-SHA256(key, hash)``. Because each hash covers every entry
before it, one valid MAC authenticates the whole record up to its entry.

``verify`` (:func:`verify_record`) then

1. checks the chain (numbering, links, hashes) and, with the key, every MAC;
2. checks the record against every *anchor* it can see: the creation anchor in the key file,
   the anchor log beside the key (an anchor is written by every create, pack, merge, export,
   report, seal and successful verify), and anchors handed to it (a package's manifest, a
   report's ``results.json``); an anchor states "entry N had hash H", so a record cut short or
   rewritten before N is found even if the whole database was replaced;
3. replays the record (the last image of each row) and compares it, field by field, with every
   row now in the tables: a changed field, a row missing from the tables (deleted) and a row the
   record never saw (added) are each reported.

Entries written without the key (a reader on a live database who does not hold it) are protected
against *later* edits by the keyed entries after them, but nothing proves who wrote them: with
the key, ``verify`` reports them until the coordinator vouches for them with ``study seal``.

What this does not cover
------------------------
- Someone who holds the key (or the coordinator's account) can rewrite anything: keep the key
  off the study folder and back it up (see :mod:`studies.study_key`).
- Without the key, ``verify`` checks only the record's internal consistency and the anchors it
  can see without their MACs; an editor who recomputes every hash passes that. It says so.
- Entries after the newest anchor can be cut off the end without trace (an anchor states how far
  the record reached; nothing states that it ended there). Every coordinator action anchors.
- A reader's workstation cannot hold the key, so a package proves nothing on its own: its record
  shows only that it is internally consistent. ``study merge`` closes that gap: it rebuilds what
  the package must contain from the main study and re-validates every row the reader added
  against the main study's protocol, assignments and washout (``studies.merge_checks``), and
  refuses the package whole if anything fails.
- Clocks: times are what the writing machine's clock said. A merge refuses times that run
  backwards, break the washout or lie in the future, but a workstation whose clock was set
  ahead before reading is indistinguishable from one that was right.
- The image files are outside the database; packages carry their sha256 (``manifest.json``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import Insert, Select, Table, Text, bindparam, insert, select, type_coerce
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from studies.canonical import canonical_json
from studies.db.models import Base, RecordEntry
from studies.study_key import StudyKey

#: ``Session.info`` key under which a write transaction carries the study key (or None).
KEY_INFO = "blindreader.study_key"

#: Tables whose rows the record does not hold: the record itself and schema bookkeeping.
UNRECORDED_TABLES = frozenset({"record", "schema_release", "alembic_version"})

#: Entries that are not images of a table row.
ANCHOR_ENTRY = "@anchor"
SEAL_ENTRY = "@seal"

GENESIS_HASH = "0" * 64

#: How many problems of one kind are listed before the rest are counted.
MAX_LISTED = 200


@dataclass(frozen=True)
class Head:
    """The newest entry of a record."""

    seq: int
    hash: str


def jsonable(value: Any) -> Any:
    """A stored value as JSON: timestamps in ISO 8601 (UTC), dates as ``YYYY-MM-DD``."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def recorded_tables() -> list[Table]:
    """The tables whose rows the record holds, parents before children."""
    return [t for t in Base.metadata.sorted_tables if t.name not in UNRECORDED_TABLES]


def _table(table_or_model: Table | type[Base]) -> Table:
    if isinstance(table_or_model, Table):
        return table_or_model
    table = table_or_model.__table__
    assert isinstance(table, Table)
    return table


def row_id_of(table: Table, row: Mapping[str, Any]) -> str:
    """The primary key of a row as text (columns joined by ``|`` for composite keys)."""
    return "|".join(str(row[c.name]) for c in table.primary_key.columns)


def image_of(table: Table, row: Mapping[str, Any]) -> dict[str, Any]:
    """The image of a row: every column of the table, as JSON values."""
    return {c.name: jsonable(row[c.name]) for c in table.columns if c.name in row}


def entry_hash(prev_hash: str, seq: int, table_name: str, row_id: str, image_json: str) -> str:
    """``sha256(prev_hash + canonical entry)`` as hex."""
    content = canonical_json({"seq": seq, "table": table_name, "row": row_id, "image": image_json})
    return hashlib.sha256((prev_hash + content).encode("utf-8")).hexdigest()


def entry_mac_text(entry_hash_hex: str) -> str:
    """What a record entry's MAC is computed over."""
    return f"record|{entry_hash_hex}"


def anchor_mac_text(anchor: Mapping[str, Any]) -> str:
    """What an anchor's MAC is computed over (its fields but the MAC itself)."""
    return "anchor|" + canonical_json({k: v for k, v in anchor.items() if k != "mac"})


def study_key_of(s: Session) -> StudyKey | None:
    """The study key the write transaction carries (None: written without it)."""
    key = s.info.get(KEY_INFO)
    return key if isinstance(key, StudyKey) else None


# Statements on every answer's path are built once (building one costs more than running it).
@functools.cache
def _head_statement() -> Select[int, str]:
    return select(RecordEntry.seq, RecordEntry.hash).order_by(RecordEntry.seq.desc()).limit(1)


@functools.cache
def _insert_statement() -> Insert:
    return insert(_table(RecordEntry))


@functools.cache
def _row_statement(table: Table) -> Select[Any]:
    pk = next(iter(table.primary_key.columns))
    return select(table).where(pk == bindparam("row_id"))


def head(s: Session) -> Head | None:
    """The newest entry (None for an empty record)."""
    row = s.connection().execute(_head_statement()).first()
    return Head(int(row[0]), str(row[1])) if row is not None else None


_HEAD_INFO = "blindreader.record_head"


def _current_head(s: Session) -> Head | None:
    """The head, remembered within one write transaction (which holds the write lock)."""
    transaction = s.get_transaction()
    cached = s.info.get(_HEAD_INFO)
    if cached is not None and transaction is not None and cached[0] is transaction:
        return cached[1]  # type: ignore[no-any-return]
    return head(s)


def _append(s: Session, items: Iterable[tuple[str, str, dict[str, Any]]]) -> Head | None:
    """Append ``(table name, row id, image)`` entries; return the new head."""
    key = study_key_of(s)
    last = _current_head(s)
    seq, prev = (last.seq, last.hash) if last is not None else (0, GENESIS_HASH)
    rows = []
    for table_name, row_id, image in items:
        seq += 1
        image_json = canonical_json(image)
        digest = entry_hash(prev, seq, table_name, row_id, image_json)
        rows.append(
            {
                "seq": seq,
                "table_name": table_name,
                "row_id": row_id,
                "image_json": image_json,
                "prev_hash": prev,
                "hash": digest,
                "mac": key.mac(entry_mac_text(digest)) if key is not None else None,
            }
        )
        prev = digest
    if rows:
        s.connection().execute(_insert_statement(), rows)
        s.info[_HEAD_INFO] = (s.get_transaction(), Head(seq, prev))
        return Head(seq, prev)
    return last


def record_rows(s: Session, table_or_model: Table | type[Base], ids: Iterable[str]) -> None:
    """Record the rows ``ids`` of a table as they are now stored (after an insert or update).

    The rows are read back from the database, so every column is in the image, whatever the
    statement that wrote them set. Call it inside the write transaction, after the write.
    """
    table = _table(table_or_model)
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return
    s.flush()
    pk = next(iter(table.primary_key.columns))
    found: dict[str, dict[str, Any]] = {}
    con = s.connection()  # Core, not the ORM: this is on every answer's path
    for chunk_start in range(0, len(wanted), 500):
        chunk = wanted[chunk_start : chunk_start + 500]
        if len(chunk) == 1:
            rows = con.execute(_row_statement(table), {"row_id": chunk[0]})
        else:
            rows = con.execute(select(table).where(pk.in_(chunk)))
        for row in rows:
            mapping = dict(row._mapping)
            found[row_id_of(table, mapping)] = image_of(table, mapping)
    missing = [i for i in wanted if i not in found]
    if missing:
        raise RuntimeError(f"record_rows: {table.name} rows {missing[:3]} not found")
    _append(s, ((table.name, i, found[i]) for i in wanted))


def record_all(s: Session, *, exclude: Sequence[str] = ()) -> int:
    """Record every row of every recorded table (a new study or package); return the count.

    Rows go in table order, then by primary key (not by insertion order, which could follow
    the arms).
    """
    s.flush()
    items: list[tuple[str, str, dict[str, Any]]] = []
    for table in recorded_tables():
        if table.name in exclude:
            continue
        rows = [dict(r._mapping) for r in s.execute(select(table))]
        for row in sorted(rows, key=lambda r: row_id_of(table, r)):
            items.append((table.name, row_id_of(table, row), image_of(table, row)))
    _append(s, items)
    return len(items)


def append_marker(s: Session, kind: str, marker_id: str, image: dict[str, Any]) -> Head:
    """Append an anchor or seal entry (not the image of a row); return the new head."""
    assert kind in (ANCHOR_ENTRY, SEAL_ENTRY)
    new_head = _append(s, [(kind, marker_id, image)])
    assert new_head is not None
    return new_head


def make_anchor(
    key: StudyKey | None, study_id: str, at_head: Head, what: str, at: datetime
) -> dict[str, Any]:
    """An anchor: "the record of ``study_id`` reached ``at_head`` when ``what`` happened"."""
    anchor: dict[str, Any] = {
        "study_id": study_id,
        "seq": at_head.seq,
        "hash": at_head.hash,
        "what": what,
        "at": jsonable(at),
    }
    if key is not None:
        anchor["mac"] = key.mac(anchor_mac_text(anchor))
    return anchor


# ---- verification -------------------------------------------------------------------------


@dataclass
class RecordCheck:
    """What :func:`verify_record` found: problems (verify fails) and notes (it does not)."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    n_entries: int = 0
    n_keyed: int = 0
    n_anchors: int = 0
    head: Head | None = None


class _Namer:
    """Names rows in words from their images (recorded, else stored)."""

    def __init__(self, images: Mapping[tuple[str, str], Mapping[str, Any]]) -> None:
        self.images = images

    def get(self, table: str, row_id: object) -> Mapping[str, Any] | None:
        return self.images.get((table, str(row_id)))

    def name(self, table: str, row_id: str, image: Mapping[str, Any] | None = None) -> str:
        image = image if image is not None else self.get(table, row_id)
        if image is None:
            return f"{table} {row_id}"
        g = image.get
        try:
            if table == "study":
                return f"study {g('title')!r}"
            if table == "arm":
                return f"arm {g('code')}"
            if table == "subject":
                return f"subject {g('subject_id')}"
            if table == "case":
                return f"case {g('case_id')}"
            if table == "case_truth":
                return f"truth of {self.name('case', str(g('case_pk')))} for {g('finding_id')}"
            if table == "series":
                return (
                    f"series {g('opaque_id')} ({self.name('case', str(g('case_pk')))}, "
                    f"{self.name('arm', str(g('arm_pk')))})"
                )
            if table == "finding":
                return f"finding {g('finding_id')}"
            if table == "question":
                return f"question {g('question_id')}"
            if table == "reader":
                return f"reader {g('reader_id')}"
            if table == "reading_session":
                reader = self.get("reader", g("reader_pk"))
                who = reader.get("reader_id") if reader else g("reader_pk")
                return f"session {g('index')} of reader {who}"
            if table == "assignment":
                session = self.get("reading_session", g("session_pk"))
                where = self.name("reading_session", str(g("session_pk")), session)
                return (
                    f"assignment at position {g('position')} of {where} "
                    f"({self.name('case', str(g('case_pk')))})"
                )
            if table == "answer":
                what = str(g("question_id"))
                if g("finding_id"):
                    what += f"[finding={g('finding_id')}]"
                if g("side"):
                    what += f"[side={g('side')}]"
                return f"answer {what} of the {self.name('assignment', str(g('assignment_pk')))}"
            if table == "answer_revision":
                return f"revision {g('revision')} of the {self.name('answer', str(g('answer_pk')))}"
            if table == "event":
                return f"event {g('seq')} ({g('kind')}, reader {g('reader_id')})"
            if table == "export_run":
                return f"export run {g('what')!r} of {g('created_at')}"
            if table == "merge_log":
                return f"merge of package {g('package_id')} ({g('created_at')})"
            if table == "package_log":
                return f"package {g('package_id')} for reader {g('reader_id')}"
        except (TypeError, KeyError):  # pragma: no cover - a damaged image: fall back
            pass
        return f"{table} row {row_id}"

    _REFERENCES: ClassVar[dict[str, str]] = {
        "arm_pk": "arm",
        "left_arm_pk": "arm",
        "right_arm_pk": "arm",
        "case_pk": "case",
        "subject_pk": "subject",
        "reader_pk": "reader",
        "session_pk": "reading_session",
        "assignment_pk": "assignment",
        "answer_pk": "answer",
    }

    def show(self, column: str, value: Any) -> str:
        target = self._REFERENCES.get(column)
        if target is not None and value is not None and self.get(target, value) is not None:
            return self.name(target, str(value))
        text = repr(value)
        return text if len(text) <= 90 else text[:87] + "..."


def _text_difference(stored: str, recorded: str) -> str:
    a, b = stored.splitlines(), recorded.splitlines()
    for number, (x, y) in enumerate(zip(a, b, strict=False), start=1):
        if x != y:
            return f"line {number} is {x.strip()[:60]!r}, the record says {y.strip()[:60]!r}"
    return f"it has {len(a)} lines, the record {len(b)}"


def _ranges(numbers: Sequence[int]) -> str:
    parts: list[str] = []
    start = prev = numbers[0]
    for n in numbers[1:]:
        if n == prev + 1:
            prev = n
            continue
        parts.append(f"{start}..{prev}" if start != prev else str(start))
        start = prev = n
    parts.append(f"{start}..{prev}" if start != prev else str(start))
    shown = ", ".join(parts[:8])
    return shown + (f" and {len(parts) - 8} more ranges" if len(parts) > 8 else "")


def _capped(lines: list[str], what: str) -> list[str]:
    if len(lines) <= MAX_LISTED:
        return lines
    return [*lines[:MAX_LISTED], f"... and {len(lines) - MAX_LISTED} more {what}"]


def verify_record(
    s: Session,
    key: StudyKey | None,
    anchors: Sequence[Mapping[str, Any]] = (),
    *,
    study_id: str | None = None,
    unkeyed_after: int | None = None,
) -> RecordCheck:
    """Check the study record and the rows now stored against it.

    Parameters
    ----------
    s
        A read session on the study database.
    key
        The study key (None: only internal consistency and unkeyed anchors can be checked).
    anchors
        Anchors seen elsewhere (key file, anchor log, manifests, reports).
    study_id
        Anchors of other studies are skipped (and noted).
    unkeyed_after
        Entries after this one may be written without the key (a package: the reader's work).

    Returns
    -------
    RecordCheck
    """
    check = RecordCheck()
    entries = list(s.execute(select(RecordEntry).order_by(RecordEntry.seq)).scalars())
    check.n_entries = len(entries)
    if not entries:
        check.problems.append(
            "the study record is empty: it was deleted, or the study was made before blindreader "
            "kept one (schema 0002)"
        )
    by_seq: dict[int, RecordEntry] = {}
    chain_problems: list[str] = []
    prev_hash, expected = GENESIS_HASH, 1
    unkeyed: list[RecordEntry] = []
    bad_mac: list[str] = []
    seals: list[tuple[int, int]] = []
    for entry in entries:
        what = f"record entry {entry.seq} ({entry.table_name} {entry.row_id})"
        if entry.seq != expected:
            chain_problems.append(
                f"{what}: expected entry {expected}: entries {expected}..{entry.seq - 1} are "
                "missing (deleted)"
            )
        if entry.prev_hash != prev_hash:
            chain_problems.append(
                f"{what}: does not link to the entry before it (an entry was removed, inserted "
                "or changed)"
            )
        recomputed = entry_hash(
            entry.prev_hash, entry.seq, entry.table_name, entry.row_id, entry.image_json
        )
        if recomputed != entry.hash:
            chain_problems.append(f"{what}: its content does not match its hash (changed)")
        if key is not None:
            if entry.mac is None:
                unkeyed.append(entry)
            elif not key.check(entry_mac_text(entry.hash), entry.mac):
                bad_mac.append(
                    f"{what}: its MAC is not the study key's (written or changed without the key)"
                )
            else:
                check.n_keyed += 1
                if entry.table_name == SEAL_ENTRY:
                    try:
                        image = json.loads(entry.image_json)
                        seals.append((int(image["from"]), int(image["to"])))
                    except (ValueError, KeyError, TypeError):
                        bad_mac.append(f"{what}: a seal without its range")
        by_seq[entry.seq] = entry
        prev_hash, expected = entry.hash, entry.seq + 1
    check.problems += _capped(chain_problems, "chain problems")
    check.problems += _capped(bad_mac, "entries with a wrong MAC")
    if entries:
        check.head = Head(entries[-1].seq, entries[-1].hash)
    if key is None:
        check.notes.append(
            "checked without the study key: the record is consistent, but an editor who "
            "recomputed its hashes would pass too; run verify where the key is"
        )
    else:
        vouched = [
            e
            for e in unkeyed
            if not any(a <= e.seq <= b for a, b in seals)
            and (unkeyed_after is None or e.seq <= unkeyed_after)
        ]
        sealed = sum(1 for e in unkeyed if any(a <= e.seq <= b for a, b in seals))
        if sealed:
            check.notes.append(f"{sealed} entries written without the key were sealed by you")
        allowed = len(unkeyed) - sealed - len(vouched)
        if allowed:
            check.notes.append(
                f"{allowed} entries were written without the key where that is expected (a "
                "reader's work in a package, which `study merge` re-validates)"
            )
        if vouched:
            counts: dict[str, int] = defaultdict(int)
            for e in vouched:
                counts[e.table_name] += 1
            kinds = ", ".join(f"{t} {n}" for t, n in sorted(counts.items()))
            check.problems.append(
                f"record entries {_ranges([e.seq for e in vouched])} ({len(vouched)} entries: "
                f"{kinds}) were written without the study key and nobody vouched for them: a "
                "reader on a live database, or an edit; check them, then `blindreader study "
                "seal` vouches for them"
            )

    _check_anchors(check, by_seq, key, anchors, study_id)
    _check_rows(s, check, entries)
    return check


def _check_anchors(
    check: RecordCheck,
    by_seq: Mapping[int, RecordEntry],
    key: StudyKey | None,
    anchors: Sequence[Mapping[str, Any]],
    study_id: str | None,
) -> None:
    seen: set[tuple[int, str]] = set()
    n_entries = max(by_seq) if by_seq else 0
    for anchor in anchors:
        try:
            seq, digest = int(anchor["seq"]), str(anchor["hash"])
        except (KeyError, TypeError, ValueError):
            check.problems.append(f"an anchor without an entry number and hash: {dict(anchor)}")
            continue
        if study_id is not None and anchor.get("study_id") not in (None, study_id):
            check.notes.append(f"an anchor of another study ({anchor.get('study_id')}) was skipped")
            continue
        label = f"the anchor of {anchor.get('what', 'an action')} ({anchor.get('at', '?')})"
        if (
            key is not None
            and "mac" in anchor
            and not key.check(anchor_mac_text(anchor), str(anchor["mac"]))
        ):
            check.problems.append(f"{label}: its MAC is not the study key's (a forged anchor)")
            continue
        if (seq, digest) in seen:
            continue
        seen.add((seq, digest))
        check.n_anchors += 1
        entry = by_seq.get(seq)
        if seq > n_entries:
            check.problems.append(
                f"the record ends at entry {n_entries}, but {label} saw entry {seq}: entries "
                f"{n_entries + 1}..{seq} were deleted"
            )
        elif entry is None:
            check.problems.append(f"record entry {seq}, seen by {label}, is missing (deleted)")
        elif entry.hash != digest:
            check.problems.append(
                f"record entry {seq} differs from {label}: the record up to there was rewritten"
            )


def _stored_rows(s: Session, table: Table) -> list[dict[str, Any]]:
    """Every row of a table; a cell that cannot be read as its type (a timestamp or JSON edited
    by hand) comes back as ``"<unreadable: ...>"`` instead of failing the whole check."""
    try:
        with s.begin_nested():
            return [dict(r._mapping) for r in s.execute(select(table))]
    except (ValueError, TypeError, StatementError):
        pass
    raw = [
        dict(r._mapping)
        for r in s.execute(select(*[type_coerce(c, Text).label(c.name) for c in table.columns]))
    ]
    dialect = s.get_bind().dialect
    rows = []
    for row in raw:
        out: dict[str, Any] = {}
        for column in table.columns:
            value = row[column.name]
            processor = column.type.result_processor(dialect, None)
            try:
                out[column.name] = processor(value) if processor and value is not None else value
            except (ValueError, TypeError):
                out[column.name] = f"<unreadable: {value!r}>"
        rows.append(out)
    return rows


def _check_rows(s: Session, check: RecordCheck, entries: Sequence[RecordEntry]) -> None:
    recorded: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in entries:
        if entry.table_name.startswith("@"):
            continue
        try:
            recorded[(entry.table_name, entry.row_id)] = json.loads(entry.image_json)
        except ValueError:
            continue  # reported as a hash mismatch
    stored: dict[tuple[str, str], dict[str, Any]] = {}
    for live in recorded_tables():
        for mapping in _stored_rows(s, live):
            stored[(live.name, row_id_of(live, mapping))] = image_of(live, mapping)
    namer = _Namer({**stored, **recorded})
    changed: list[str] = []
    deleted: dict[str, list[str]] = defaultdict(list)
    added: dict[str, list[str]] = defaultdict(list)
    for (table, row_id), image in recorded.items():
        now = stored.get((table, row_id))
        if now is None:
            deleted[table].append(namer.name(table, row_id, image))
            continue
        for column in sorted(set(image) | set(now)):
            was, is_ = image.get(column), now.get(column)
            if was == is_ or (column not in image and is_ is None):
                continue
            where = f"{table}: {namer.name(table, row_id, image)}: {column}"
            if isinstance(was, str) and isinstance(is_, str) and max(len(was), len(is_)) > 90:
                changed.append(f"{where} differs from the record ({_text_difference(is_, was)})")
            else:
                changed.append(
                    f"{where} is {namer.show(column, is_)}, the record says "
                    f"{namer.show(column, was)}"
                )
    for (table, row_id), image in stored.items():
        if (table, row_id) not in recorded:
            added[table].append(namer.name(table, row_id, image))
    check.problems += _capped(changed, "changed fields")
    for table, names in sorted(deleted.items()):
        lines = [f"{table}: {n}: deleted (the record holds it)" for n in names]
        check.problems += _capped(lines, f"deleted {table} rows")
    for table, names in sorted(added.items()):
        lines = [f"{table}: {n}: not in the record (added outside blindreader)" for n in names]
        check.problems += _capped(lines, f"added {table} rows")


__all__ = [
    "ANCHOR_ENTRY",
    "KEY_INFO",
    "SEAL_ENTRY",
    "UNRECORDED_TABLES",
    "Head",
    "RecordCheck",
    "append_marker",
    "head",
    "image_of",
    "make_anchor",
    "record_all",
    "record_rows",
    "recorded_tables",
    "verify_record",
]
