"""Re-validating a returned package against the main study, before anything of it is merged.

A reader's workstation cannot hold the study key, so nothing in a package proves itself: whoever
holds the package folder can edit its database and recompute every hash. ``merge`` therefore
trusts only the main study and checks everything the package brings against it
(:func:`check_package`); one problem refuses the whole package.

1. The package is one this study wrote (its id is in ``package_log``), for that reader, and its
   event chain and record are intact; the record up to the moment it was packed is the one the
   main study anchored (and keyed, where the key is here).
2. Every row fixed at pack time (study, protocol, stand-in arms, findings, questions, cases,
   subjects, series, reader, sessions, assignments with their order and sides) equals what the
   main study packs for that reader (:func:`studies.package_format.package_rows`); the protocol is
   compared by a digest of what it says, as redacted for the package.
3. Every answer, revision and event it was given is still there, unchanged.
4. Every answer the reader gave: an assignment of that reader, a question of the main study's
   protocol asked in that scope (finding, side), a value that question accepts; revisions
   numbered 1, 2, ... in time order, each with its ``answer_set`` event at the same instant; no
   arm (a package stores preferences by side).
5. Times: the chain's events in time order, nothing before the package was written or after the
   merge (beyond :data:`MAX_CLOCK_SKEW`), completions only with every required answer given, and
   the washout as the main study computes it (:mod:`studies.clock`): nothing in session k before
   session k-1 finished and ``washout_days`` passed, no answer in a finished session; the
   sessions' finish and ``not_before`` dates must be the ones that rule gives.
6. Every event is the package reader's, of a kind a workstation writes, about that reader's
   assignments.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from studies.api import AnswerKey
from studies.canonical import canonical_json
from studies.clock import washout_not_before, washout_opens_at
from studies.db.models import Event
from studies.errors import StudyError
from studies.events import verify_answers, verify_chain
from studies.package_format import (
    EMPTY_TABLES,
    MUTABLE_COLUMNS,
    PACKAGE_EVENT_KINDS,
    STATIC_TABLES,
    package_rows,
    protocol_digest,
)
from studies.protocol import MEASUREMENT_TYPES, parse_protocol, protocol_sha256
from studies.record import jsonable, recorded_tables, row_id_of, verify_record
from studies.store import Store, format_key

#: How far a workstation's clock may run ahead of the coordinator's.
MAX_CLOCK_SKEW = timedelta(minutes=5)

#: Problems listed per package before the rest are counted.
MAX_PROBLEMS = 200


def _iso(value: datetime | None) -> str:
    return value.isoformat(timespec="milliseconds") if value is not None else "none"


def _key_of(answer: Mapping[str, Any]) -> AnswerKey:
    side = answer["side"] or None
    return AnswerKey(answer["question_id"], answer["finding_id"] or None, side)


class _Checker:
    def __init__(
        self,
        main: Store,
        pkg: Store,
        manifest: Mapping[str, Any],
        log: Mapping[str, Any],
        now: datetime,
    ) -> None:
        self.main, self.pkg, self.manifest, self.log, self.now = main, pkg, manifest, log, now
        self.reader_id = str(log["reader_id"])
        self.mapping: Mapping[str, Any] = log["mapping"]
        self.created: datetime = log["created_at"]
        self.problems: list[str] = []

    def problem(self, text: str) -> None:
        self.problems.append(text)

    # ---- reading ------------------------------------------------------------------------

    def load(self) -> None:
        with self.pkg.reading() as ps:
            self.p_events = list(ps.execute(select(Event).order_by(Event.seq)).scalars())
            for line in verify_chain(self.p_events):
                self.problem(f"event log: {line}")
            for line in verify_answers(ps):
                self.problem(line)
            packed = self.mapping.get("package_head") or {}
            anchor = {**packed, "what": "study pack", "at": _iso(self.created)}
            check = verify_record(
                ps,
                self.main.key,
                [anchor],
                study_id=self.main.study_id,
                unkeyed_after=int(packed.get("seq", 0)),
            )
            for line in check.problems:
                self.problem(f"package record: {line}")
            self.p_rows: dict[str, list[dict[str, Any]]] = {
                t.name: [dict(r._mapping) for r in ps.execute(select(t))] for t in recorded_tables()
            }
        stand_ins = {k: (v[0], v[1], v[2]) for k, v in self.mapping["stand_ins"].items()}
        with self.main.reading() as ms:
            self.expected, self.redacted_toml = package_rows(ms, self.reader_id, stand_ins)
            self.m_rows: dict[str, dict[str, dict[str, Any]]] = {}
            for table in recorded_tables():
                if table.name in ("answer", "answer_revision", "event", "assignment"):
                    self.m_rows[table.name] = {
                        row_id_of(table, dict(r._mapping)): dict(r._mapping)
                        for r in ms.execute(select(table))
                    }
        sessions = {r["id"]: r for r in self.expected["reading_session"]}
        self.sessions = sessions
        self.assignments = {
            a["id"]: self.m_rows["assignment"][a["id"]] for a in self.expected["assignment"]
        }
        self.session_of = {aid: sessions[a["session_pk"]] for aid, a in self.assignments.items()}

    # ---- 2: rows fixed at pack time ------------------------------------------------------

    def static_rows(self) -> None:
        for name in EMPTY_TABLES:
            if self.p_rows.get(name):
                self.problem(f"package table {name}: holds {len(self.p_rows[name])} row(s), none")
        ignore = {"study": {"protocol_toml", "protocol_sha256"}}
        for name in STATIC_TABLES:
            self._compare(name, ignore.get(name, set()) | set(MUTABLE_COLUMNS.get(name, ())))
        study = self.p_rows["study"][0] if len(self.p_rows["study"]) == 1 else None
        if study is None:
            return
        if protocol_sha256(study["protocol_toml"]) != study["protocol_sha256"]:
            self.problem("package study: protocol_toml does not match its protocol_sha256")
        if self.manifest.get("protocol_sha256") != study["protocol_sha256"]:
            self.problem("manifest: protocol_sha256 differs from the package database's")
        try:
            theirs = protocol_digest(parse_protocol(study["protocol_toml"], "package protocol"))
        except StudyError as exc:
            self.problem(f"package study: {exc}")
            return
        ours = protocol_digest(parse_protocol(self.redacted_toml, "redacted protocol"))
        if theirs != ours:
            self.problem(
                "package study: its protocol differs from the study's protocol (as redacted "
                f"for reader {self.reader_id})"
            )

    def _describe(self, table: str, row: Mapping[str, Any]) -> str:
        if table == "assignment":
            session = self.sessions.get(row.get("session_pk", ""))
            index = session["index"] if session else "?"
            return f"assignment at position {row.get('position')} of session {index}"
        if table == "reading_session":
            return f"session {row.get('index')}"
        for column in ("reader_id", "case_id", "opaque_id", "question_id", "finding_id", "code"):
            if column in row:
                return f"{table} {row[column]}"
        return f"{table} {row.get('id')}"

    def _compare(self, name: str, ignore: set[str]) -> None:
        table = next(t for t in recorded_tables() if t.name == name)
        expected = {row_id_of(table, r): r for r in self.expected[name]}
        actual = {row_id_of(table, r): r for r in self.p_rows.get(name, [])}
        for row_id in sorted(expected.keys() - actual.keys()):
            self.problem(f"package {self._describe(name, expected[row_id])}: missing (deleted)")
        for row_id in sorted(actual.keys() - expected.keys()):
            self.problem(f"package {self._describe(name, actual[row_id])}: not packed (added)")
        for row_id in sorted(expected.keys() & actual.keys()):
            want, have = expected[row_id], actual[row_id]
            for column in table.columns:
                if column.name in ignore:
                    continue
                a, b = jsonable(want.get(column.name)), jsonable(have.get(column.name))
                if a != b:
                    self.problem(
                        f"package {self._describe(name, want)}: {column.name} is {b!r}, the "
                        f"study packed {a!r}"
                    )

    # ---- 3: what the reader was given ----------------------------------------------------

    def given_rows(self) -> None:
        p_ids = {
            name: {r["id"] for r in self.p_rows.get(name, [])}
            for name in ("answer", "answer_revision", "event")
        }
        for name, key in (("answer", "answers"), ("answer_revision", "revisions")):
            for row_id in self.mapping.get(key, []):
                if row_id not in p_ids[name]:
                    self.problem(f"package {name} {row_id}: given to the reader, now missing")
        for event_id in self.mapping.get("events", []):
            if event_id not in p_ids["event"]:
                self.problem(f"package event {event_id}: given to the reader, now missing")

    # ---- 4, 5: answers and their times ---------------------------------------------------

    def _time(self, what: str, at: datetime) -> None:
        if at < self.created:
            self.problem(
                f"{what}: at {_iso(at)}, before the package was written ({_iso(self.created)})"
            )
        if at > self.now + MAX_CLOCK_SKEW:
            self.problem(
                f"{what}: at {_iso(at)}, after this merge ({_iso(self.now)}; is the "
                "workstation's clock ahead?)"
            )

    def sessions_by_rule(self) -> None:
        """The sessions' finish and not_before as the main study's rule gives them."""
        p_assignments = {a["id"]: a for a in self.p_rows.get("assignment", [])}
        self.completed: dict[str, datetime | None] = {}
        for aid, m in self.assignments.items():
            p = p_assignments.get(aid)
            self.completed[aid] = m["completed_at"] or (p["completed_at"] if p else None)
        washout = self.main.protocol.washout_days
        self.window: dict[str, tuple[datetime | None, datetime | None]] = {}
        prev_finished: datetime | None = None
        by_index = sorted(self.sessions.values(), key=lambda r: r["index"])
        p_sessions = {r["id"]: r for r in self.p_rows.get("reading_session", [])}
        for session in by_index:
            times = [self.completed[a] for a, s in self.session_of.items() if s is session]
            finished = max(t for t in times if t) if times and all(times) else None
            not_before = None
            opens = None
            if session["index"] > 1 and prev_finished is not None:
                not_before = washout_not_before(prev_finished, washout)
                opens = washout_opens_at(not_before)
            start = opens if session["index"] > 1 else None
            if session["index"] > 1 and prev_finished is None:
                start = datetime.max.replace(tzinfo=self.now.tzinfo)  # locked: nothing allowed
            self.window[session["id"]] = (start, finished)
            p = p_sessions.get(session["id"])
            where = f"session {session['index']} of reader {self.reader_id}"
            if p is not None:
                if p["finished_at"] != finished and (p["finished_at"] or finished):
                    self.problem(
                        f"{where}: finished_at is {_iso(p['finished_at'])} in the package, its "
                        f"completions give {_iso(finished)}"
                    )
                if session["index"] > 1 and p["not_before"] != not_before:
                    rule = (
                        f"{washout} days after session {session['index'] - 1} finished at "
                        f"{_iso(prev_finished)}"
                        if prev_finished
                        else f"session {session['index'] - 1} is unfinished"
                    )
                    self.problem(
                        f"{where}: not_before is {p['not_before']} in the package, the study's "
                        f"washout ({rule}) gives {not_before}"
                    )
            prev_finished = finished

    def _in_session(self, what: str, assignment_id: str, at: datetime, *, writes: bool) -> None:
        session = self.session_of.get(assignment_id)
        if session is None:
            return
        start, finished = self.window[session["id"]]
        where = f"session {session['index']}"
        if start is not None and at < start:
            if start.year == datetime.max.year:
                self.problem(
                    f"{what}: in {where} at {_iso(at)}, while the session before it was unfinished"
                )
            else:
                self.problem(
                    f"{what}: in {where} at {_iso(at)}, before it opened ({_iso(start)}: the "
                    f"washout of {self.main.protocol.washout_days} days)"
                )
        if writes and finished is not None and at > finished:
            self.problem(f"{what}: in {where} at {_iso(at)}, after it finished ({_iso(finished)})")

    def answers(self) -> None:
        protocol = self.main.protocol
        answer_events: dict[str, Event] = {}
        for e in self.p_events:
            if e.kind == "answer_set":
                try:
                    payload = json.loads(e.payload_json)
                    answer_events[str(payload["revision_id"])] = e
                except (ValueError, KeyError, TypeError):
                    self.problem(f"package event {e.seq} (answer_set): payload without revision_id")
        revisions: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for rev in self.p_rows.get("answer_revision", []):
            revisions[rev["answer_pk"]].append(rev)
        m_answers, m_revisions = self.m_rows["answer"], self.m_rows["answer_revision"]
        p_assignment_rows = {a["id"]: a for a in self.p_rows.get("assignment", [])}
        for answer in self.p_rows.get("answer", []):
            key = AnswerKey(
                answer["question_id"], answer["finding_id"] or None, answer["side"] or None
            )  # type: ignore[arg-type]
            what = f"answer {format_key(key)} ({answer['id']})"
            assignment = self.assignments.get(answer["assignment_pk"])
            if assignment is None:
                self.problem(f"{what}: of an assignment that is not reader {self.reader_id}'s")
                continue
            where = self.session_of[assignment["id"]]
            what = (
                f"answer {format_key(key)} at position {assignment['position']} of session "
                f"{where['index']}"
            )
            main_answer = m_answers.get(answer["id"])
            if main_answer is not None:
                for column in ("assignment_pk", "question_id", "finding_id", "side"):
                    if main_answer[column] != answer[column]:
                        self.problem(
                            f"{what}: {column} is {answer[column]!r}, the study has "
                            f"{main_answer[column]!r} (moved)"
                        )
            try:
                question = protocol.question(key.question_id)
                self.main.validate_answer(key, None)
            except StudyError as exc:
                self.problem(f"{what}: {exc}")
                continue
            if answer["arm_value"] is not None:
                self.problem(f"{what}: names arm {answer['arm_value']!r} (a package stores no arm)")
            revs = sorted(revisions.get(answer["id"], []), key=lambda r: r["revision"])
            if [r["revision"] for r in revs] != list(range(1, len(revs) + 1)):
                self.problem(
                    f"{what}: revisions numbered {[r['revision'] for r in revs]}, expected 1.."
                    f"{len(revs)} (a revision was deleted or added)"
                )
            for earlier, later in itertools.pairwise(revs):
                if later["recorded_at"] < earlier["recorded_at"]:
                    self.problem(
                        f"{what}: revision {later['revision']} at {_iso(later['recorded_at'])} is "
                        f"earlier than revision {earlier['revision']} (times run backwards)"
                    )
            if revs:
                last = revs[-1]
                if (
                    answer["value_json"] != last["value_json"]
                    or answer["revision"] != last["revision"]
                    or answer["first_answered_at"] != revs[0]["recorded_at"]
                    or answer["last_answered_at"] != last["recorded_at"]
                ):
                    self.problem(f"{what}: value, revision or times differ from its revisions")
            else:
                self.problem(f"{what}: has no revisions")
            for rev in revs:
                self._revision(what, question, key, answer, rev, m_revisions, answer_events)
        # completions
        for aid, p in p_assignment_rows.items():
            m = self.assignments.get(aid)
            if m is None or p["completed_at"] is None or m["completed_at"] == p["completed_at"]:
                continue
            session = self.session_of[aid]
            what = f"completion of position {m['position']} of session {session['index']}"
            if m["completed_at"] is not None:
                self.problem(
                    f"{what}: at {_iso(p['completed_at'])} in the package, "
                    f"{_iso(m['completed_at'])} in the study"
                )
                continue
            at = p["completed_at"]
            self._time(what, at)
            self._in_session(what, aid, at, writes=False)
            given = {
                _key_of(a): self._value_at(revisions.get(a["id"], []), at)
                for a in self.p_rows.get("answer", [])
                if a["assignment_pk"] == aid
            }
            labels = self.main.series_labels(aid)
            missing = [k for k in self.main.required_keys(given, labels) if given.get(k) is None]
            if missing:
                self.problem(
                    f"{what}: completed without required answers "
                    + ", ".join(format_key(k) for k in missing)
                )
            if not any(
                e.kind == "assignment_completed" and e.assignment_id == aid and e.created_at == at
                for e in self.p_events
            ):
                self.problem(f"{what}: no assignment_completed event at {_iso(at)}")

    @staticmethod
    def _value_at(revs: list[dict[str, Any]], at: datetime) -> Any:
        value = None
        for rev in sorted(revs, key=lambda r: r["revision"]):
            if rev["recorded_at"] <= at:
                value = json.loads(rev["value_json"])
        return value

    def _revision(
        self,
        what: str,
        question: Any,
        key: AnswerKey,
        answer: Mapping[str, Any],
        rev: Mapping[str, Any],
        m_revisions: Mapping[str, Mapping[str, Any]],
        answer_events: Mapping[str, Event],
    ) -> None:
        label = f"{what}, revision {rev['revision']}"
        if rev["arm_value"] is not None:
            self.problem(f"{label}: names arm {rev['arm_value']!r} (a package stores no arm)")
        try:
            value = json.loads(rev["value_json"])
            normalised = self.main.validate_answer(key, value)
            if canonical_json(normalised) != rev["value_json"]:
                raise StudyError(f"value {rev['value_json']} is not stored as the study stores it")
            if question.type in MEASUREMENT_TYPES and isinstance(normalised, dict):
                # What a drawn answer measured is measured again on the study's own images.
                measured = self.main.measure_answer(answer["assignment_pk"], key, normalised)
                if canonical_json(measured) != rev["value_json"]:
                    raise StudyError(
                        f"the values of {rev['value_json']} are not what the study measures on "
                        f"its images ({canonical_json(measured)})"
                    )
        except (ValueError, StudyError) as exc:
            self.problem(f"{label}: {exc}")
        known = m_revisions.get(rev["id"])
        if known is not None:
            for column, stored in known.items():
                if column != "arm_value" and jsonable(stored) != jsonable(rev.get(column)):
                    self.problem(
                        f"{label}: {column} is {jsonable(rev.get(column))!r}, the study has "
                        f"{jsonable(stored)!r} (changed)"
                    )
            return
        at = rev["recorded_at"]
        self._time(label, at)
        self._in_session(label, answer["assignment_pk"], at, writes=True)
        event = answer_events.get(rev["id"])
        if event is None:
            self.problem(f"{label}: no answer_set event records it")
            return
        payload = json.loads(event.payload_json)
        expected = {
            "question": key.question_id,
            "finding": key.finding_id,
            "side": key.side,
            "revision": rev["revision"],
        }
        if (
            event.created_at != at
            or event.assignment_id != answer["assignment_pk"]
            or event.reader_id != self.reader_id
            or canonical_json(payload.get("value")) != rev["value_json"]
            or any(payload.get(k) != v for k, v in expected.items())
        ):
            self.problem(f"{label}: differs from its answer_set event {event.seq}")

    # ---- 6: events -----------------------------------------------------------------------

    def events(self) -> None:
        m_events = self.m_rows["event"]
        previous: datetime | None = None
        n_created = 0
        for e in self.p_events:
            what = f"package event {e.seq} ({e.kind})"
            if previous is not None and e.created_at < previous:
                self.problem(
                    f"{what}: at {_iso(e.created_at)}, earlier than the event before it "
                    f"({_iso(previous)}: times run backwards)"
                )
            previous = e.created_at
            known = m_events.get(e.id)
            if known is not None:
                same = (
                    known["kind"] == e.kind
                    and known["reader_id"] == e.reader_id
                    and known["assignment_id"] == e.assignment_id
                    and known["payload_json"] == e.payload_json
                    and known["created_at"] == e.created_at
                )
                if not same:
                    self.problem(f"{what}: differs from event {known['seq']} of the study")
                continue
            if e.kind == "package_created":
                n_created += 1
                payload = json.loads(e.payload_json)
                if payload.get("package_id") != self.manifest.get("package_id"):
                    self.problem(f"{what}: of another package")
                continue
            if e.kind not in PACKAGE_EVENT_KINDS:
                self.problem(f"{what}: a workstation does not write {e.kind!r} events")
            if e.reader_id != self.reader_id:
                self.problem(
                    f"{what}: attributed to reader {e.reader_id!r}, the package is reader "
                    f"{self.reader_id!r}'s"
                )
            if e.assignment_id is not None and e.assignment_id not in self.assignments:
                self.problem(f"{what}: about an assignment that is not reader {self.reader_id}'s")
            self._time(what, e.created_at)
            if e.assignment_id is not None and e.kind in ("case_opened", "answer_set"):
                self._in_session(what, e.assignment_id, e.created_at, writes=False)
        if n_created != 1:
            self.problem(f"package event log: {n_created} package_created events, expected 1")


def check_package(
    main: Store,
    pkg: Store,
    manifest: Mapping[str, Any],
    log: Mapping[str, Any],
    now: datetime,
) -> list[str]:
    """Every problem of a returned package against the main study ([] when it may be merged).

    Parameters
    ----------
    main
        The main study.
    pkg
        The package's database, opened.
    manifest
        Its manifest.
    log
        The ``package_log`` row the main study wrote when it packed it.
    now
        The merge's time.
    """
    checker = _Checker(main, pkg, manifest, log, now)
    checker.load()
    checker.static_rows()
    checker.given_rows()
    checker.sessions_by_rule()
    checker.answers()
    checker.events()
    problems = checker.problems
    if len(problems) > MAX_PROBLEMS:
        problems = [*problems[:MAX_PROBLEMS], f"... and {len(problems) - MAX_PROBLEMS} more"]
    return problems


__all__ = ["MAX_CLOCK_SKEW", "check_package"]
