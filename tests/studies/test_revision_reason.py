"""Changing an answer of a completed case needs a reason: refused without one (nothing stored),
kept with the revision and in its hash-chained ``answer_set`` event (so the events export shows
it), and carried through a reader's package and the merge."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from studies.api import AnswerKey
from studies.errors import StudyError
from studies.export import events_frame
from studies.package import merge_packages, pack_reader
from studies.store import Store
from tests.studies.study_factory import answer_all, build_study

QUALITY = AnswerKey("quality")


def revisions(db: Path) -> list[tuple[int, str, str | None]]:
    with sqlite3.connect(db) as con:
        return con.execute(
            "select r.revision, r.value_json, r.reason from answer_revision r "
            "join answer a on a.id = r.answer_pk where a.question_id = 'quality' "
            "order by r.revision"
        ).fetchall()


def n_events(db: Path) -> int:
    with sqlite3.connect(db) as con:
        return int(con.execute("select count(*) from event").fetchone()[0])


@pytest.fixture
def completed(tmp_path: Path, clock) -> tuple[Path, str]:
    """A study whose R1 session 1 has its first case completed (quality 3)."""
    db = build_study(tmp_path)
    with Store.open(db, clock=clock) as store:
        aid = store.assignments("R1", 1)[0].assignment_id
        answer_all(store, aid)
        store.record_answer(aid, QUALITY, 2)  # an open case changes freely
        store.record_answer(aid, QUALITY, 3)
        store.complete_assignment(aid)
    return db, aid


def test_an_open_case_changes_without_a_reason(completed):
    db, _ = completed
    assert revisions(db) == [(1, "3", None), (2, "2", None), (3, "3", None)]


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_a_completed_case_refuses_a_change_without_a_reason(completed, clock, reason):
    db, aid = completed
    before_revisions, before_events = revisions(db), n_events(db)
    with Store.open(db, clock=clock) as store:
        with pytest.raises(StudyError, match=r"is completed: changing quality needs a reason"):
            store.record_answer(aid, QUALITY, 1, reason=reason)
        assert store.assignment(aid).answers[QUALITY] == 3
        # giving the stored value again is no change, so no reason is asked
        assert store.record_answer(aid, QUALITY, 3).revision == 3
    assert revisions(db) == before_revisions and n_events(db) == before_events


def test_the_reason_is_kept_with_the_revision_and_its_event(completed, clock):
    db, aid = completed
    with Store.open(db, clock=clock) as store:
        record = store.record_answer(aid, QUALITY, 1, reason="  corrected a slip ")
        assert record.revision == 4 and record.reason == "corrected a slip"
        assert store.assignment(aid).answers[QUALITY] == 1
        assert store.verify_events() == []
        events = events_frame(store)
    assert revisions(db)[-1] == (4, "1", "corrected a slip")
    assert [r[2] for r in revisions(db)[:3]] == [None, None, None]
    payloads = [json.loads(p) for p in events[events["kind"] == "answer_set"]["payload"]]
    assert payloads[-1]["reason"] == "corrected a slip" and payloads[-1]["revision"] == 4
    assert all("reason" not in p for p in payloads[:-1])


def test_a_reason_given_in_a_package_survives_the_merge(completed, tmp_path, clock):
    db, aid = completed
    pkg = tmp_path / "pkg"
    pack_reader(db, "R1", pkg, clock=clock)
    with Store.open(pkg / "study.sqlite", clock=clock) as store:
        with pytest.raises(StudyError, match="needs a reason"):
            store.record_answer(aid, QUALITY, 4)
        store.record_answer(aid, QUALITY, 4, reason="re-read the images")
    merge_packages(db, [pkg], clock=clock)
    assert revisions(db)[-1] == (4, "4", "re-read the images")
    with Store.open(db, clock=clock) as store:
        assert store.assignment(aid).answers[QUALITY] == 4
        assert store.verify_events() == []
