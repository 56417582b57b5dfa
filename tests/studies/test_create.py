"""``create_study`` on real DICOM: blinded copies, stored assignments, atomic failure."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pydicom
import pytest

from studies.create import create_study
from studies.errors import StudyError
from studies.store import Store
from tests.studies.conftest import make_series, write_cases_csv
from tests.studies.study_factory import SEQUENTIAL_TOML

ARMS = ("conv", "dl")


def make_inputs(
    folder: Path, n_cases: int = 3, *, leak_case: str | None = None, n_slices: int = 3
) -> tuple[Path, Path]:
    """A protocol file and CASES.csv with real DICOM series (8x8, ``n_slices`` slices)."""
    protocol = folder / "study.toml"
    protocol.write_text(SEQUENTIAL_TOML, encoding="utf-8")
    rows = []
    ids = [f"C{i}" for i in range(1, n_cases + 1)] + ["T1"]
    for i, case_id in enumerate(ids):
        for arm in ARMS:
            extra = {}
            if case_id == leak_case and arm == "dl":
                extra["ImageType"] = ["ORIGINAL", "PRIMARY", "M", "DL"]
            make_series(folder / "dicom" / case_id / arm, n_slices=n_slices, seed=i, **extra)
            rows.append(
                {
                    "case_id": case_id,
                    "subject_id": f"P{i // 2}",
                    "arm": arm,
                    "series_dir": f"dicom/{case_id}/{arm}",
                    "truth_acl": i % 2,
                    "truth_mcl": "",
                }
            )
    cases = write_cases_csv(folder / "CASES.csv", rows)
    return protocol, cases


def listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_create_makes_a_blinded_study(tmp_path: Path, clock) -> None:
    protocol, cases = make_inputs(tmp_path)
    calls: list[tuple[int, int, str]] = []
    summary = create_study(
        protocol,
        cases,
        tmp_path / "study.sqlite",
        progress=lambda d, t, m: calls.append((d, t, m)),
        clock=clock,
    )
    assert listing(tmp_path) == {"study.toml", "CASES.csv", "dicom", "study.sqlite", "study_images"}
    assert (summary.n_cases, summary.n_series, summary.n_slices) == (4, 8, 24)
    assert summary.n_assignments == 2 * (3 * 2 + 1)  # 2 readers; training case read once
    assert calls[-1][0] == calls[-1][1] and calls[0][0] == 0
    folders = sorted((tmp_path / "study_images").iterdir())
    assert len(folders) == 8
    with Store.open(tmp_path / "study.sqlite", clock=clock) as store:
        assert store.study_title == "Test sequential study"
        assert store.verify_events() == []
        view = store.next_assignment("R1")
        assert view is not None and view.is_training
        files = view.sides[0].files
        assert [f.name for f in files] == ["0001.dcm", "0002.dcm", "0003.dcm"]
        ds = pydicom.dcmread(files[0])
        assert str(ds.PatientName).startswith("p-") and ds.PatientID == str(ds.PatientName)
        assert ds.ClinicalTrialSeriesID == view.sides[0].series_id
        assert "InstitutionName" not in ds or ds.InstitutionName == ""
        assert not any(elem.tag.is_private for elem in ds)
        for f in files:
            assert "conv" not in str(f) and "dl" not in str(f).replace(str(tmp_path), "")
    con = sqlite3.connect(tmp_path / "study.sqlite")
    seed, version, libs = con.execute(
        "select seed, algorithm_version, library_versions from study"
    ).fetchone()
    truths = con.execute("select count(*) from case_truth where truth is not null").fetchone()[0]
    con.close()
    assert seed == 7 and version.startswith("blindreader-assignments/")
    assert '"pydicom"' in libs and '"numpy"' in libs
    assert truths == 4  # truth_acl for every case; truth_mcl empty


def test_leak_stops_create_and_leaves_nothing(tmp_path: Path) -> None:
    protocol, cases = make_inputs(tmp_path, leak_case="C2")
    before = listing(tmp_path)
    with pytest.raises(StudyError) as err:
        create_study(protocol, cases, tmp_path / "study.sqlite")
    message = str(err.value)
    assert "arm leak" in message and "--allow-leak" in message
    assert "case C2" in message and "arm dl" in message and "ImageType" in message
    assert str(tmp_path / "dicom" / "C2" / "dl") in message  # the source file, not the copy
    assert listing(tmp_path) == before


def test_allowed_leak_is_logged(tmp_path: Path, clock) -> None:
    protocol, cases = make_inputs(tmp_path, leak_case="C2")
    summary = create_study(
        protocol,
        cases,
        tmp_path / "study.sqlite",
        allow_leak="description fixed by PACS",
        clock=clock,
    )
    assert summary.n_leaks_allowed >= 1
    con = sqlite3.connect(tmp_path / "study.sqlite")
    payload = con.execute("select payload_json from event where kind = 'leak_allowed'").fetchone()
    con.close()
    assert "description fixed by PACS" in payload[0] and "ImageType" in payload[0]
    with pytest.raises(StudyError, match="needs a reason"):
        create_study(protocol, cases, tmp_path / "other.sqlite", allow_leak="  ", clock=clock)


def test_bad_cases_file_leaves_nothing(tmp_path: Path) -> None:
    protocol, cases = make_inputs(tmp_path, n_cases=1)
    text = cases.read_text().replace("series_dir", "folder")
    cases.write_text(text)
    before = listing(tmp_path)
    with pytest.raises(StudyError, match="series_dir"):
        create_study(protocol, cases, tmp_path / "study.sqlite")
    assert listing(tmp_path) == before


def test_unreadable_dicom_leaves_nothing(tmp_path: Path) -> None:
    protocol, cases = make_inputs(tmp_path, n_cases=2)
    (tmp_path / "dicom" / "C2" / "dl" / "slice001.dcm").write_bytes(b"garbage" * 20)
    before = listing(tmp_path)
    with pytest.raises(StudyError, match=r"CASES.csv, line \d+, case C2, arm dl: .*slice001.dcm"):
        create_study(protocol, cases, tmp_path / "study.sqlite")
    assert listing(tmp_path) == before


def test_existing_database_is_never_overwritten(tmp_path: Path) -> None:
    protocol, cases = make_inputs(tmp_path, n_cases=1)
    db = tmp_path / "study.sqlite"
    db.write_bytes(b"precious")
    with pytest.raises(StudyError, match="already exists"):
        create_study(protocol, cases, db)
    assert db.read_bytes() == b"precious"
    db.unlink()
    (tmp_path / "study_images").mkdir()
    (tmp_path / "study_images" / "keep.txt").write_text("x")
    with pytest.raises(StudyError, match="image folder already exists"):
        create_study(protocol, cases, db)
    assert not db.exists() and (tmp_path / "study_images" / "keep.txt").exists()


def test_missing_protocol_is_a_clear_error(tmp_path: Path) -> None:
    _, cases = make_inputs(tmp_path, n_cases=1)
    with pytest.raises(StudyError, match="protocol file not found"):
        create_study(tmp_path / "nope.toml", cases, tmp_path / "study.sqlite")
    assert not (tmp_path / "study.sqlite").exists()
