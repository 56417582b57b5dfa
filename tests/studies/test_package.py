"""Reading packages: pack one reader, answer in the package, merge back (idempotent, conflicts)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from studies.api import AnswerKey
from studies.errors import StudyError
from studies.export import answers_frame
from studies.package import check_images, merge_packages, pack_reader, read_manifest
from studies.store import Store
from tests.studies.study_factory import answer_all, build_study, finish_session

TABLES = ("answer", "answer_revision", "assignment", "event", "reading_session", "merge_log")


def snapshot(db: Path) -> dict[str, list[tuple[object, ...]]]:
    con = sqlite3.connect(db)
    try:
        return {t: sorted(map(tuple, con.execute(f"select * from {t}"))) for t in TABLES}
    finally:
        con.close()


@pytest.fixture
def study(tmp_path: Path) -> Path:
    return build_study(tmp_path)


def test_pack_writes_a_self_contained_package(study: Path, tmp_path: Path, clock) -> None:
    summary = pack_reader(study, "R2", tmp_path / "pkg", clock=clock)
    pkg = tmp_path / "pkg"
    assert sorted(p.name for p in pkg.iterdir()) == [
        "manifest.json",
        "study.sqlite",
        "study_images",
    ]
    manifest = read_manifest(pkg)
    with Store.open(study, clock=clock) as main:
        assert manifest["study_id"] == main.study_id and manifest["reader_id"] == "R2"
        wanted = {
            side.series_id for s in (1, 2) for v in main.assignments("R2", s) for side in v.sides
        }
    assert check_images(pkg, manifest) == []
    assert len(manifest["files"]) == summary.n_files == 3 * summary.n_series
    assert {p.name for p in (pkg / "study_images").iterdir()} == wanted
    with Store.open(pkg / "study.sqlite", clock=clock) as store:
        assert [r.reader_id for r in store.readers()] == ["R2"]
        assert store.origin == "package" and store.verify_events() == []
        assert store.verify().ok  # its own record (the main study's anchors are not its)
        view = store.next_assignment("R2")
        assert view is not None and all(f.is_file() for f in view.sides[0].files)
        assert str(pkg) in str(view.sides[0].files[0])
    con = sqlite3.connect(pkg / "study.sqlite")
    assert con.execute("select count(*) from case_truth").fetchone()[0] == 0  # no truth
    case_ids = [r[0] for r in con.execute('select case_id from "case"')]
    subject_ids = [r[0] for r in con.execute("select subject_id from subject")]
    assert all(c.startswith("c-") for c in case_ids) and all(
        s.startswith("p-") for s in subject_ids
    )
    con.close()
    (pkg / "study_images" / sorted(wanted)[0] / "0001.dcm").write_bytes(b"changed")
    assert check_images(pkg, manifest) == [f"study_images/{sorted(wanted)[0]}/0001.dcm: changed"]


def test_pack_refuses_bad_input(study: Path, tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="unknown reader 'R9'"):
        pack_reader(study, "R9", tmp_path / "pkg")
    assert not (tmp_path / "pkg").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(StudyError, match="not empty"):
        pack_reader(study, "R1", tmp_path / "full")
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["x"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_answers_from_a_package_merge_once(study: Path, tmp_path: Path, clock) -> None:
    pkg = tmp_path / "pkg"
    pack_reader(study, "R1", pkg, clock=clock)
    with Store.open(pkg / "study.sqlite", clock=clock) as store:
        finish_session(store, "R1", 1, step=lambda: clock.advance(minutes=1))
        first = store.assignments("R1", 1)[1].assignment_id
        expected = answers_frame(store)
        assert all(c.startswith("c-") for c in answers_frame(store, unblinded=True)["case"])
    before = snapshot(study)
    report = merge_packages(study, [pkg], clock=clock)
    (merged,) = report.packages
    assert merged.n_answers == len(expected) + 4  # + training case (4 required answers)
    assert merged.n_completed == 5 and merged.conflicts == []
    after_once = snapshot(study)
    assert after_once != before
    with Store.open(study, clock=clock) as main:
        assert main.verify_events() == []
        s1, s2 = main.sessions("R1")
        assert s1.finished and s2.not_before is not None and s2.locked
        got = answers_frame(main)
        assert main.active_ms(first) >= 0
    # (the package has no export ids: the blinded export's case ids are the main study's only)
    assert expected["case"].isna().all() and got["case"].str.startswith("e-").all()
    cols = ["reader", "session", "position", "question", "finding", "value"]
    assert got[cols].astype(str).values.tolist() == expected[cols].astype(str).values.tolist()
    again = merge_packages(study, [pkg, pkg], clock=clock)
    assert all(not p.changed for p in again.packages)
    assert snapshot(study) == after_once  # merging twice changes nothing


def test_revisions_made_in_a_package_extend_the_study(study: Path, tmp_path: Path, clock) -> None:
    with Store.open(study, clock=clock) as main:
        aid = main.assignments("R1", 1)[0].assignment_id
        main.record_answer(aid, AnswerKey("quality"), 1)
    pack_reader(study, "R1", tmp_path / "pkg", clock=clock)
    with Store.open(tmp_path / "pkg" / "study.sqlite", clock=clock) as store:
        assert store.assignment(aid).answers == {AnswerKey("quality"): 1}
        store.record_answer(aid, AnswerKey("quality"), 4)
    report = merge_packages(study, [tmp_path / "pkg"], clock=clock)
    assert report.packages[0].n_revisions == 1 and report.conflicts == []
    with Store.open(study, clock=clock) as main:
        assert main.assignment(aid).answers == {AnswerKey("quality"): 4}
        assert main.verify_events() == []
    con = sqlite3.connect(study)
    revs = con.execute(
        "select revision, value_json from answer_revision order by revision"
    ).fetchall()
    con.close()
    assert revs == [(1, "1"), (2, "4")]


def test_conflicting_histories_are_reported_not_overwritten(
    study: Path, tmp_path: Path, clock
) -> None:
    pack_reader(study, "R1", tmp_path / "pkg", clock=clock)
    with Store.open(tmp_path / "pkg" / "study.sqlite", clock=clock) as store:
        view = store.assignments("R1", 1)[0]
        answer_all(store, view.assignment_id, grade=2)
        store.complete_assignment(view.assignment_id)
        other = store.assignments("R1", 1)[1].assignment_id
        store.record_answer(other, AnswerKey("quality"), 3)
    with Store.open(study, clock=clock) as main:
        main.record_answer(view.assignment_id, AnswerKey("quality"), 4)  # answered at the hub too
        main.record_answer(other, AnswerKey("quality"), 3)  # the same answer in both: no conflict
    report = merge_packages(study, [tmp_path / "pkg"], clock=clock)
    (conflict,) = report.conflicts
    assert conflict.key == AnswerKey("quality") and conflict.assignment_id == view.assignment_id
    assert conflict.study_values == ("4",) and conflict.package_values == ("2",)
    assert str(conflict) == "reader R1, session 1, case 1, quality: study has 4, package has 2"
    with Store.open(study, clock=clock) as main:
        merged = main.assignment(view.assignment_id)
        assert merged.answers[AnswerKey("quality")] == 4  # not overwritten
        assert merged.answers[AnswerKey("likelihood", "acl")] == 2  # the rest came over
        assert not merged.completed  # an assignment with a conflict stays open
        assert main.assignment(other).answers == {AnswerKey("quality"): 3}
        assert main.verify_events() == []
    again = merge_packages(study, [tmp_path / "pkg"], clock=clock)
    assert len(again.conflicts) == 1 and not again.packages[0].changed


def test_merge_refuses_foreign_or_broken_packages(study: Path, tmp_path: Path, clock) -> None:
    other_folder = tmp_path / "other"
    other_folder.mkdir()
    other = build_study(other_folder)
    pack_reader(other, "R1", tmp_path / "foreign", clock=clock)
    before = snapshot(study)
    with pytest.raises(StudyError, match="package of another study"):
        merge_packages(study, [tmp_path / "foreign"], clock=clock)
    with pytest.raises(StudyError, match="not a reading package"):
        merge_packages(study, [other_folder], clock=clock)
    with pytest.raises(StudyError, match="package folder not found"):
        merge_packages(study, [tmp_path / "nope"], clock=clock)
    pack_reader(study, "R1", tmp_path / "pkg", clock=clock)  # logged in the study
    before = snapshot(study)
    with Store.open(tmp_path / "pkg" / "study.sqlite", clock=clock) as store:
        aid = store.assignments("R1", 1)[0].assignment_id
        store.record_answer(aid, AnswerKey("quality"), 3)
    con = sqlite3.connect(tmp_path / "pkg" / "study.sqlite")
    with con:
        con.execute("update event set payload_json = '{}' where kind = 'answer_set'")
    con.close()
    with pytest.raises(StudyError, match=r"event log: event .* does not match its hash"):
        merge_packages(study, [tmp_path / "pkg"], clock=clock)
    manifest = json.loads((tmp_path / "pkg" / "manifest.json").read_text())
    manifest["reader_id"] = "R9"
    (tmp_path / "pkg" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StudyError, match="manifest names reader 'R9'"):
        merge_packages(study, [tmp_path / "pkg"], clock=clock)
    assert snapshot(study) == before
