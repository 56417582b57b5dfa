"""The store API on real SQLite files: settings, answers, validation, washout, time, errors."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from studies.api import AnswerKey
from studies.db.engine import check_local_filesystem, filesystem_of
from studies.errors import StudyError
from studies.store import Store
from tests.studies.study_factory import FakeClock, answer_all, build_study, finish_session


@pytest.fixture
def seq_db(tmp_path: Path) -> Path:
    return build_study(tmp_path)


@pytest.fixture
def store(seq_db: Path, clock: FakeClock):
    with Store.open(seq_db, clock=clock) as st:
        yield st


def n_revisions(db: Path) -> int:
    with sqlite3.connect(db) as con:
        return con.execute("select count(*) from answer_revision").fetchone()[0]


# ---- opening --------------------------------------------------------------------------------


def test_open_refuses_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="not found"):
        Store.open(tmp_path / "nope.sqlite")
    text = tmp_path / "notes.sqlite"
    text.write_text("hello")
    with pytest.raises(StudyError, match="not a SQLite file"):
        Store.open(text)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as con:
        con.execute("create table t (x)")
    before = other.read_bytes()
    with pytest.raises(StudyError, match="not a study database"):
        Store.open(other)
    assert other.read_bytes() == before
    with pytest.raises(StudyError, match="not a file"):
        Store.open(tmp_path)


def test_sqlite_settings_and_immediate_write_lock(store: Store, seq_db: Path) -> None:
    with store.engine.connect() as con:
        assert con.exec_driver_sql("pragma journal_mode").scalar() == "wal"
        assert con.exec_driver_sql("pragma synchronous").scalar() == 2  # FULL
        assert con.exec_driver_sql("pragma foreign_keys").scalar() == 1
        assert con.exec_driver_sql("pragma busy_timeout").scalar() >= 1000
    other = sqlite3.connect(seq_db, timeout=0, isolation_level=None)
    # The write lock is taken when the transaction begins, before any write.
    with store.writing(), pytest.raises(sqlite3.OperationalError, match="locked"):
        other.execute("BEGIN IMMEDIATE")
    other.execute("BEGIN IMMEDIATE")
    other.execute("ROLLBACK")
    other.close()


MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:50 / /mnt/lab rw,relatime shared:2 - nfs4 server:/export rw
41 22 0:51 / /mnt/my\\040share rw - cifs //srv/share rw
42 22 0:52 / /home/u/remote rw - fuse.sshfs u@host: rw
43 40 8:2 / /mnt/lab/local rw - ext4 /dev/sdb1 rw
"""


@pytest.mark.parametrize(
    ("path", "fstype"),
    [
        ("/mnt/lab/study.sqlite", "nfs4"),
        ("/mnt/my share/x/study.sqlite", "cifs"),
        ("/home/u/remote/study.sqlite", "fuse.sshfs"),
    ],
)
def test_network_filesystem_is_refused(path: str, fstype: str) -> None:
    assert filesystem_of(Path(path), MOUNTINFO)[1] == fstype
    with pytest.raises(StudyError, match=f"network file system \\({fstype}") as err:
        check_local_filesystem(Path(path), MOUNTINFO)
    assert path in str(err.value)


def test_local_filesystems_are_accepted(tmp_path: Path) -> None:
    check_local_filesystem(Path("/mnt/lab/local/study.sqlite"), MOUNTINFO)
    check_local_filesystem(Path("/srv/study.sqlite"), MOUNTINFO)
    check_local_filesystem(tmp_path / "study.sqlite")  # this machine's real mount table


# ---- readers, sessions, assignments ---------------------------------------------------------


def test_readers_sessions_and_views(store: Store) -> None:
    assert [r.reader_id for r in store.readers()] == ["R1", "R2"]
    s1, s2 = store.sessions("R1")
    assert (s1.index, s1.n_total, s1.n_done, s1.locked, s1.finished) == (1, 5, 0, False, False)
    assert s2.locked and s2.not_before is None  # session 1 unfinished
    views = store.assignments("R1", 1)
    assert [v.position for v in views] == [1, 2, 3, 4, 5]
    assert views[0].is_training and not any(v.is_training for v in views[1:])
    assert views[0].display_label == "Case 1 of 5"
    for v in views:
        assert len(v.sides) == 1 and len(v.sides[0].files) == 3
        assert all(f.exists() for f in v.sides[0].files)
        assert "conv" not in v.sides[0].series_id and "dl" not in str(v.sides[0].files[0])
    assert store.next_assignment("R1") == views[0]
    assert store.assignment(views[2].assignment_id) == views[2]


def test_unknown_reader_and_assignment(store: Store) -> None:
    with pytest.raises(StudyError, match="unknown reader 'R9' \\(readers: R1, R2\\)"):
        store.sessions("R9")
    with pytest.raises(StudyError, match="unknown reader"):
        store.next_assignment("R9")
    with pytest.raises(StudyError, match="has no session 3"):
        store.session_progress("R1", 3)
    with pytest.raises(StudyError, match="unknown assignment"):
        store.assignment("no-such-id")
    with pytest.raises(StudyError, match="unknown assignment"):
        store.record_answer("no-such-id", AnswerKey("quality"), 2)


# ---- answers ----------------------------------------------------------------------------------


def test_answers_are_revised_never_overwritten(
    store: Store, seq_db: Path, clock: FakeClock
) -> None:
    a = store.next_assignment("R1")
    assert a is not None
    r1 = store.record_answer(a.assignment_id, AnswerKey("quality"), 2)
    clock.advance(seconds=5)
    r2 = store.record_answer(a.assignment_id, AnswerKey("quality"), 4)
    same = store.record_answer(a.assignment_id, AnswerKey("quality"), 4)
    assert (r1.revision, r2.revision, same.revision) == (1, 2, 2)
    assert r2.recorded_at - r1.recorded_at == (clock.now - r1.recorded_at)
    assert store.assignment(a.assignment_id).answers == {AnswerKey("quality"): 4}
    with sqlite3.connect(seq_db) as con:
        values = con.execute("select value_json from answer_revision order by revision").fetchall()
    assert values == [("2",), ("4",)]


def test_every_question_type_is_stored(store: Store) -> None:
    a = store.next_assignment("R1")
    assert a is not None
    aid = a.assignment_id
    store.record_answer(aid, AnswerKey("likelihood", "acl"), 4)
    store.record_answer(aid, AnswerKey("artifact"), True)
    store.record_answer(aid, AnswerKey("artifact_kind"), ["aliasing", "motion"])
    store.record_answer(aid, AnswerKey("confidence"), "high")
    store.record_answer(aid, AnswerKey("snr"), 12)
    store.record_answer(aid, AnswerKey("comment"), "fine")
    assert store.assignment(aid).answers == {
        AnswerKey("likelihood", "acl"): 4,
        AnswerKey("artifact"): True,
        AnswerKey("artifact_kind"): ["motion", "aliasing"],  # option order
        AnswerKey("confidence"): "high",
        AnswerKey("snr"): 12.0,
        AnswerKey("comment"): "fine",
    }


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            AnswerKey("quality"),
            0,
            "question 'quality' \\(likert\\): expected an integer 1..4, got 0",
        ),
        (AnswerKey("quality"), 5, "expected an integer 1..4"),
        (AnswerKey("quality"), True, "expected an integer 1..4, got True"),
        (AnswerKey("quality"), "3", "expected an integer 1..4, got '3'"),
        (AnswerKey("confidence"), "medium", "expected one of 'low', 'high', got 'medium'"),
        (AnswerKey("artifact_kind"), ["motion", "motion"], "selected twice"),
        (AnswerKey("artifact_kind"), ["blur"], "unknown \\['blur'\\]"),
        (AnswerKey("artifact_kind"), "motion", "expected a list of options"),
        (AnswerKey("artifact"), 1, "expected true or false, got 1"),
        (AnswerKey("snr"), 101, "expected a number in 0.0..100.0, got 101"),
        (AnswerKey("snr"), float("nan"), "expected a finite number"),
        (AnswerKey("comment"), "x" * 21, "at most 20 characters, got 21"),
        (AnswerKey("nope"), 1, "unknown question 'nope'"),
        (AnswerKey("likelihood"), 3, "finding_id must be one of acl, mcl \\(got None\\)"),
        (AnswerKey("likelihood", "pcl"), 3, "finding_id must be one of acl, mcl"),
        (AnswerKey("quality", "acl"), 3, "not asked per finding"),
        (AnswerKey("quality", None, "left"), 3, "not asked per side"),
    ],
)
def test_bad_answers_are_refused_and_nothing_stored(
    store: Store, seq_db: Path, key: AnswerKey, value: object, message: str
) -> None:
    a = store.next_assignment("R1")
    assert a is not None
    with pytest.raises(StudyError, match=message):
        store.record_answer(a.assignment_id, key, value)  # type: ignore[arg-type]
    assert n_revisions(seq_db) == 0
    assert store.verify_events() == []


def test_required_answers_and_show_if(store: Store) -> None:
    a = store.next_assignment("R1")
    assert a is not None
    aid = a.assignment_id
    with pytest.raises(StudyError, match="required answers missing: likelihood\\[finding=acl\\]"):
        store.complete_assignment(aid)
    answer_all(store, aid)
    assert store.missing_required(aid) == []
    store.record_answer(aid, AnswerKey("artifact"), True)
    assert store.missing_required(aid) == [AnswerKey("artifact_kind")]
    with pytest.raises(StudyError, match="artifact_kind"):
        store.complete_assignment(aid)
    store.record_answer(aid, AnswerKey("artifact_kind"), ["motion"])
    store.complete_assignment(aid)
    assert store.assignment(aid).completed
    assert store.session_progress("R1", 1).n_done == 1
    nxt = store.next_assignment("R1")
    assert nxt is not None and nxt.position == 2


def test_clearing_an_answer_makes_it_missing_again(store: Store) -> None:
    a = store.next_assignment("R1")
    assert a is not None
    answer_all(store, a.assignment_id)
    rec = store.record_answer(a.assignment_id, AnswerKey("quality"), None)
    assert rec.revision == 2
    assert store.missing_required(a.assignment_id) == [AnswerKey("quality")]


# ---- sessions: lock, washout, read-only -------------------------------------------------------


def test_washout_locks_the_next_session(store: Store, clock: FakeClock, seq_db: Path) -> None:
    s2_first = store.assignments("R1", 2)[0]
    with pytest.raises(StudyError, match="session 2 of reader 'R1' is locked: finish session 1"):
        store.record_answer(s2_first.assignment_id, AnswerKey("quality"), 3)
    finish_session(store, "R1", 1, step=lambda: clock.advance(minutes=3))
    finished_day = clock.now.date()
    s1, s2 = store.sessions("R1")
    assert s1.finished and s1.n_done == s1.n_total == 5
    assert s2.not_before is not None and (s2.not_before - finished_day).days == 28
    assert s2.locked
    assert store.next_assignment("R1") is None
    with pytest.raises(StudyError, match=f"locked until {s2.not_before.isoformat()}"):
        store.record_answer(s2_first.assignment_id, AnswerKey("quality"), 3)
    # A finished session is read-only.
    s1_first = store.assignments("R1", 1)[0]
    assert s1_first.read_only and s1_first.completed
    before = n_revisions(seq_db)
    with pytest.raises(StudyError, match=r"session 1 of reader 'R1' is finished: .*read-only"):
        store.record_answer(s1_first.assignment_id, AnswerKey("quality"), 1)
    assert n_revisions(seq_db) == before
    clock.advance(days=27)
    assert store.session_progress("R1", 2).locked
    clock.advance(days=1)
    assert not store.session_progress("R1", 2).locked
    nxt = store.next_assignment("R1")
    assert nxt is not None and nxt.session_index == 2 and not nxt.read_only
    store.record_answer(nxt.assignment_id, AnswerKey("quality"), 3)
    # The other reader is unaffected.
    assert store.sessions("R2")[0].n_done == 0


def test_paired_design_sides_and_preference(tmp_path: Path) -> None:
    db = build_study(tmp_path, design="paired", n_cases=4)
    with Store.open(db, clock=FakeClock()) as store:
        a = store.next_assignment("R1")
        assert a is not None and len(a.sides) == 2
        assert a.sides[0].series_id != a.sides[1].series_id
        with pytest.raises(StudyError, match="asked per side"):
            store.record_answer(a.assignment_id, AnswerKey("quality"), 3)
        with pytest.raises(StudyError, match="expected one of 'left', 'equal', 'right'"):
            store.record_answer(a.assignment_id, AnswerKey("preference"), "conv")
        store.record_answer(a.assignment_id, AnswerKey("quality", side="left"), 3)
        store.record_answer(a.assignment_id, AnswerKey("quality", side="right"), 2)
        store.record_answer(a.assignment_id, AnswerKey("preference"), "right")
        store.complete_assignment(a.assignment_id)
        with store.reading() as s:
            from sqlalchemy import text

            row = s.execute(
                text(
                    "select answer.value_json, answer.arm_value, arm.code from answer "
                    "join assignment on assignment.id = answer.assignment_pk "
                    "join arm on arm.id = assignment.right_arm_pk "
                    "where answer.question_id = 'preference'"
                )
            ).one()
        assert row[0] == '"right"' and row[1] == row[2]  # stored mapped to the right arm


# ---- events and active time ------------------------------------------------------------------


def test_active_time_excludes_focus_loss_and_long_idle(store: Store, clock: FakeClock) -> None:
    a = store.next_assignment("R1")
    assert a is not None
    aid = a.assignment_id
    after = {"after_ms": 60_000}  # how the viewer records idle: 60 s after the last input
    steps: list[tuple[int, str, str | None, dict[str, object] | None]] = [
        (0, "case_opened", aid, None),
        (10, "focus_lost", aid, None),
        (20, "focus_gained", aid, None),  # -10 s
        (30, "idle_started", aid, None),  # input stopped at 30 s
        (100, "idle_ended", aid, None),  # 70 s idle: the 10 s beyond 60 s are excluded
        (110, "idle_started", aid, None),
        (140, "idle_ended", aid, None),  # 30 s idle: thinking time, kept
        (145, "focus_lost", None, None),  # reader-level, no assignment: still counts
        (147, "focus_gained", None, None),  # -2 s
        (150, "idle_started", aid, after),  # viewer style: idle since 90 s already
        (155, "idle_ended", aid, None),  # -5 s
        (160, "case_closed", aid, None),
    ]
    start = clock.now
    for seconds, kind, assignment, payload in steps:
        clock.now = start + timedelta(seconds=seconds)
        store.record_event("R1", kind, assignment_id=assignment, payload=payload)
    assert store.active_ms(aid) == (160 - 10 - 10 - 2 - 5) * 1000
    # Reopening adds time; an unclosed case ends at its last event.
    clock.advance(seconds=100)
    store.record_event("R1", "case_opened", assignment_id=aid)
    clock.advance(seconds=4)
    store.record_event("R1", "window_level_changed", assignment_id=aid, payload={"w": 400})
    assert store.active_ms(aid) == (133 + 4) * 1000
    assert store.active_ms(store.assignments("R1", 1)[1].assignment_id) == 0


def test_record_event_refuses_bad_input(store: Store) -> None:
    r2 = store.assignments("R2", 1)[0].assignment_id
    with pytest.raises(StudyError, match="unknown event kind 'coffee'"):
        store.record_event("R1", "coffee")
    with pytest.raises(StudyError, match="belongs to reader 'R2', not 'R1'"):
        store.record_event("R1", "case_opened", assignment_id=r2)
    with pytest.raises(StudyError, match="unknown reader"):
        store.record_event("R7", "case_opened")
    with pytest.raises(StudyError, match="payload is not JSON"):
        store.record_event("R1", "case_opened", payload={"x": object()})
    assert store.verify_events() == []


def test_naive_clock_is_refused(seq_db: Path) -> None:
    from datetime import datetime

    with (
        Store.open(seq_db, clock=lambda: datetime(2026, 1, 1)) as store,
        pytest.raises(StudyError, match="naive datetime"),
    ):
        store.sessions("R1")
