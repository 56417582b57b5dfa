"""Exports: blinded and unblinded answers, truth, assignments, key, events, MRMC list mode."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from studies.api import AnswerKey
from studies.errors import StudyError
from studies.events import GENESIS_HASH, chain_hash
from studies.export import (
    MRMC_COLUMNS,
    answers_frame,
    assignments_frame,
    events_frame,
    export,
    key_frame,
    mrmc_frame,
    truth_frame,
    write_csv,
)
from studies.store import Store
from tests.studies.study_factory import FakeClock, build_study, finish_session


@pytest.fixture(scope="module")
def read_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sequential study where R1 read both sessions and R2 read one case."""
    folder = tmp_path_factory.mktemp("export")
    db = build_study(folder)
    clock = FakeClock()
    with Store.open(db, clock=clock) as store:
        finish_session(store, "R1", 1, step=lambda: clock.advance(minutes=2))
        clock.advance(days=28)
        finish_session(store, "R1", 2)
        first = store.next_assignment("R2")
        assert first is not None
        aid = first.assignment_id
        store.record_event("R2", "case_opened", assignment_id=aid)
        clock.advance(seconds=30)
        store.record_answer(aid, AnswerKey("quality"), 2)
        clock.advance(seconds=5)
        store.record_answer(aid, AnswerKey("quality"), 3)
        store.record_answer(aid, AnswerKey("artifact"), True)
        store.record_answer(aid, AnswerKey("artifact_kind"), ["aliasing", "motion"])
        store.record_answer(aid, AnswerKey("comment"), "x")
        store.record_answer(aid, AnswerKey("comment"), None)  # cleared
        clock.advance(seconds=12)
        store.record_event("R2", "case_closed", assignment_id=aid)
    return db


@pytest.fixture
def store(read_study: Path, clock: FakeClock):
    with Store.open(read_study, clock=clock) as st:
        yield st


def test_blinded_answers_hide_the_arms(store: Store) -> None:
    frame = answers_frame(store)
    assert "arm" not in frame.columns
    # export ids: shared with no package, no image folder and no DICOM header
    assert frame["case"].str.startswith("e-").all() and frame["subject"].str.startswith("e-").all()
    con = sqlite3.connect(store.source)
    opaque = {
        r[0]
        for r in con.execute('select opaque_id from "case" union select opaque_id from subject')
    }
    con.close()
    assert not (set(frame["case"]) | set(frame["subject"])) & opaque
    arm_codes = set(store.protocol.arm_codes)
    case_ids = {f"C{i:02d}" for i in range(1, 5)} | {"T1"}
    for column in frame.columns:
        values = set(frame[column].dropna().astype(str))
        assert not values & arm_codes, column
        assert not values & case_ids, column


def test_unblinded_answers(store: Store) -> None:
    frame = answers_frame(store, unblinded=True)
    r1 = frame[frame["reader"] == "R1"]
    # R1: 4 study cases x 2 arms; each with 2 findings + quality + artifact answered.
    assert len(r1) == 4 * 2 * 4
    assert set(r1["arm"]) == {"conv", "dl"}
    assert "T1" not in set(frame["case"])
    per_case_arm = r1[r1["question"] == "quality"].groupby(["case", "arm"]).size()
    assert (per_case_arm == 1).all() and len(per_case_arm) == 8
    assert frame["finding"].isna().sum() == len(frame[frame["question"] != "likelihood"])
    assert frame[frame["reader"] == "R2"].empty  # R2 only read the training case
    with_training = answers_frame(store, unblinded=True, include_training=True)
    assert "T1" in set(with_training["case"])
    r2 = with_training[with_training["reader"] == "R2"].set_index("question")
    assert r2.loc["quality", "value"] == 3 and r2.loc["quality", "revisions"] == 2
    assert r2.loc["quality", "label"] == "Good"
    assert r2.loc["artifact_kind", "value"] == "motion;aliasing"
    assert r2.loc["artifact_kind", "label"] == "Motion; Aliasing"
    assert "comment" not in r2.index  # cleared answers are not answers
    assert r2.loc["quality", "active_ms"] == 47_000
    first, last = r2.loc["quality", "first_answered_at"], r2.loc["quality", "last_answered_at"]
    assert pd.Timestamp(last) - pd.Timestamp(first) == pd.Timedelta(seconds=5)


def test_truth_and_mrmc(store: Store) -> None:
    truth = truth_frame(store)
    assert list(truth.columns) == ["case", "finding", "truth"]
    assert set(truth["truth"]) <= {0, 1}
    mrmc = mrmc_frame(store, "acl")
    assert tuple(mrmc.columns) == MRMC_COLUMNS
    assert set(mrmc["reader"]) == {"R1"}  # R2's only case is the training case
    assert len(mrmc) == 8 and set(mrmc["treatment"]) == {"conv", "dl"}
    known = dict(
        zip(
            truth[truth["finding"] == "acl"]["case"],
            truth[truth["finding"] == "acl"]["truth"],
            strict=True,
        )
    )
    assert all(known[c] == t for c, t in zip(mrmc["case"], mrmc["truth"], strict=True))
    with pytest.raises(StudyError, match="unknown finding 'pcl'"):
        mrmc_frame(store, "pcl")


def test_mrmc_needs_truth_and_the_sequential_design(tmp_path: Path, clock) -> None:
    db = build_study(tmp_path, design="paired")
    with Store.open(db, clock=clock) as store, pytest.raises(StudyError, match="sequential design"):
        mrmc_frame(store, "acl")
    db2 = build_study(tmp_path, name="seq.sqlite")
    con = sqlite3.connect(db2)
    with con:
        con.execute("delete from case_truth where finding_id = 'acl'")
    con.close()
    with Store.open(db2, clock=clock) as store, pytest.raises(StudyError, match="truth_acl column"):
        mrmc_frame(store, "acl")


def test_assignments_and_key_agree_with_what_readers_see(store: Store) -> None:
    assignments = assignments_frame(store)
    key = key_frame(store).set_index("opaque_id")
    r1 = assignments[(assignments["reader"] == "R1") & ~assignments["is_training"]]
    assert (r1.groupby(["case_id", "arm"]).size() == 1).all() and len(r1) == 8
    for session in (1, 2):
        for view in store.assignments("R1", session):
            row = assignments[assignments["assignment_id"] == view.assignment_id].iloc[0]
            series = key.loc[view.sides[0].series_id]
            assert (series["kind"], series["case_id"], series["arm"]) == (
                "series",
                row["case_id"],
                row["arm"],
            )
    kinds = key["kind"].value_counts()
    assert kinds["series"] == 10 and kinds["case"] == 5 and kinds["subject"] == 3


def test_paired_preference_and_sides(tmp_path: Path, clock: FakeClock) -> None:
    db = build_study(tmp_path, design="paired")
    with Store.open(db, clock=clock) as store:
        view = store.next_assignment("R1")
        assert view is not None
        store.record_answer(view.assignment_id, AnswerKey("quality", side="left"), 4)
        store.record_answer(view.assignment_id, AnswerKey("preference"), "left")
        assignments = assignments_frame(store)
        rows = assignments[assignments["assignment_id"] == view.assignment_id]
        assert list(rows["side"]) == ["left", "right"]
        left_arm = rows.iloc[0]["arm"]
        unblinded = answers_frame(store, unblinded=True).set_index("question")
        assert unblinded.loc["preference", "value"] == left_arm
        assert pd.isna(unblinded.loc["preference", "arm"])
        assert unblinded.loc["quality", "arm"] == left_arm
        assert unblinded.loc["quality", "side"] == "left"
        blinded = answers_frame(store).set_index("question")
        assert blinded.loc["preference", "value"] == "left"


def test_events_export_is_verifiable_outside(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "events.csv"
    write_csv(events_frame(store), out)
    frame = pd.read_csv(out, dtype=str, keep_default_na=False)
    prev = GENESIS_HASH
    for row in frame.itertuples(index=False):
        content = {
            "id": row.event_id,
            "seq": int(row.seq),
            "reader": row.reader or None,
            "assignment": row.assignment_id or None,
            "kind": row.kind,
            "payload": json.loads(row.payload),
            "at": row.created_at,
        }
        assert row.prev_hash == prev
        assert chain_hash(prev, content) == row.hash
        prev = row.hash


def test_write_csv_is_atomic_and_export_is_logged(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "answers.csv"
    out.write_text("old")
    n = export(store, "answers", out)
    text = out.read_bytes()
    assert n == len(answers_frame(store)) and text.startswith(b"study,reader,")
    assert [p.name for p in tmp_path.iterdir()] == ["answers.csv"]
    with store.reading() as s:
        from sqlalchemy import select

        from studies.db.models import ExportRun

        runs = s.execute(select(ExportRun)).scalars().all()
    assert runs[-1].sha256 == hashlib.sha256(text).hexdigest() and runs[-1].n_rows == n
    with pytest.raises(StudyError, match="folder not found"):
        write_csv(answers_frame(store), tmp_path / "nope" / "x.csv")
    with pytest.raises(StudyError, match="unknown export 'all'"):
        export(store, "all", tmp_path / "x.csv")
    with pytest.raises(StudyError, match="needs --finding \\(findings: acl, mcl\\)"):
        export(store, "mrmc", tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()
