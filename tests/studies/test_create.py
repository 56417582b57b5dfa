"""``create_study`` on real DICOM: blinded copies, stored assignments, atomic failure."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
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


def test_create_records_the_checksum_of_every_blinded_file(tmp_path: Path, clock) -> None:
    """The real blinded files: their sha256 are in the series rows, and ``verify`` compares."""
    protocol, cases = make_inputs(tmp_path)
    db = tmp_path / "study.sqlite"
    create_study(protocol, cases, db, clock=clock)
    con = sqlite3.connect(db)
    rows = con.execute("select folder, files_sha256 from series").fetchall()
    con.close()
    assert len(rows) == 8
    for folder, stored in rows:
        digests = json.loads(stored)
        files = sorted((tmp_path / "study_images" / folder).iterdir())
        assert sorted(digests) == [f.name for f in files]
        for f in files:
            assert digests[f.name] == hashlib.sha256(f.read_bytes()).hexdigest()
    with Store.open(db, clock=clock) as store:
        assert store.verify().ok
    victim = tmp_path / "study_images" / rows[0][0] / "0002.dcm"
    ds = pydicom.dcmread(victim)
    ds.SeriesDescription = "edited"
    ds.save_as(victim)
    with Store.open(db, clock=clock) as store:
        problems = store.verify().problems
    changed = f"series {rows[0][0]}: image file 0002.dcm was changed (its checksum differs)"
    assert problems == [changed]


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


# -- every image decoded once; a broken one stops create with one line naming the file --------


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-40])


def _truncate_header(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:400])


def _drop_pixels(path: Path) -> None:
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path, enforce_file_format=True)


def _short_pixels(path: Path) -> None:
    ds = pydicom.dcmread(path)
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    ds.save_as(path, enforce_file_format=True)


def _jpeg2000_garbage(path: Path) -> None:
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless

    ds = pydicom.dcmread(path)
    # A J2K codestream start (SOC, SIZ markers) followed by garbage.
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51\x00\x29" + bytes(range(200)) * 3])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.save_as(path, enforce_file_format=True)


def _huge_matrix(path: Path) -> None:
    ds = pydicom.dcmread(path)
    ds.Rows = ds.Columns = 65535
    ds.save_as(path, enforce_file_format=True)


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (_truncate, "PixelData is short (88 bytes; 8x8 at 16 bits needs 128)"),
        (_truncate_header, "not a DICOM image (Rows missing)"),
        (_drop_pixels, "no PixelData"),
        (_short_pixels, "PixelData is short"),
        (_jpeg2000_garbage, "cannot decode the pixel data"),
        (_huge_matrix, "Rows 65535 is not a plausible image size"),
    ],
    ids=[
        "truncated",
        "truncated header",
        "no PixelData",
        "short PixelData",
        "JPEG 2000 garbage",
        "65535 rows",
    ],
)
def test_an_undecodable_image_stops_create(tmp_path: Path, clock, damage, words: str) -> None:
    protocol, cases = make_inputs(tmp_path, n_cases=2)
    broken = tmp_path / "dicom" / "C2" / "dl" / "slice001.dcm"
    damage(broken)
    before = listing(tmp_path)
    with pytest.raises(StudyError) as info:
        create_study(protocol, cases, tmp_path / "study.sqlite", clock=clock)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400, message
    assert re.search(r"CASES.csv, line \d+, case C2, arm dl: ", message), message
    assert f"{broken}: " in message and words in message, message
    assert listing(tmp_path) == before  # no database, no image folder, no hidden temporaries


def test_the_worker_pool_blinds_like_this_process(tmp_path: Path, clock) -> None:
    protocol, cases = make_inputs(tmp_path, n_cases=3)
    serial = create_study(protocol, cases, tmp_path / "one.sqlite", workers=1, clock=clock)
    pooled = create_study(protocol, cases, tmp_path / "two.sqlite", workers=2, clock=clock)
    assert (serial.n_series, serial.n_slices) == (pooled.n_series, pooled.n_slices)
    assert [d.to_dict() for d in serial.distinguishability] == [
        d.to_dict() for d in pooled.distinguishability
    ]
    for db in ("one", "two"):
        files = sorted((tmp_path / f"{db}_images").rglob("*.dcm"))
        assert len(files) == serial.n_slices
        assert len({p.stat().st_mtime for p in files}) == 1  # one neutral time for all
    _damage = tmp_path / "dicom" / "C1" / "conv" / "slice000.dcm"
    _drop_pixels(_damage)
    with pytest.raises(StudyError, match=r"case C1, arm conv: .*slice000.dcm: no PixelData"):
        create_study(protocol, cases, tmp_path / "three.sqlite", workers=2, clock=clock)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".three", "three"))]


# -- one create per target; what a killed create left is removed by the next ------------------


def test_leftovers_of_a_killed_create_are_removed_at_the_next_run(tmp_path: Path, clock) -> None:
    protocol, cases = make_inputs(tmp_path, n_cases=1)
    leftovers = [
        tmp_path / ".study.sqlite.tmp-0badc0de",
        tmp_path / ".study.sqlite.tmp-0badc0de-wal",
        tmp_path / ".study_images.tmp-0badc0de",
    ]
    leftovers[0].write_bytes(b"half a database")
    leftovers[1].write_bytes(b"wal")
    (leftovers[2] / "s-123").mkdir(parents=True)
    (leftovers[2] / "s-123" / "0001.dcm").write_bytes(b"half a series")
    other = tmp_path / ".other.sqlite.tmp-0badc0de"  # another target's: not ours to remove
    other.write_bytes(b"x")
    create_study(protocol, cases, tmp_path / "study.sqlite", clock=clock)
    assert not any(p.exists() for p in leftovers)
    assert other.exists()
    hidden = {p.name for p in tmp_path.iterdir() if p.name.startswith(".")}
    assert hidden == {other.name}


def test_a_second_create_on_the_same_target_is_refused_while_one_runs(tmp_path: Path, clock):
    from studies.create import target_lock

    protocol, cases = make_inputs(tmp_path, n_cases=1)
    db = tmp_path / "study.sqlite"
    busy = "another `study create` is making this study"
    with target_lock(db), pytest.raises(StudyError, match=busy):
        create_study(protocol, cases, db, clock=clock)
    assert not db.exists()
    create_study(protocol, cases, db, clock=clock)  # the lock went with its holder
    assert not (tmp_path / ".study.sqlite.create-lock").exists()


@pytest.mark.system_clock
def test_sigkill_during_create_then_create_again(tmp_path: Path) -> None:
    # A real `study create` in another process, killed while it blinds; the next run cleans up.
    protocol, cases = make_inputs(tmp_path, n_cases=4, n_slices=10)
    db = tmp_path / "study.sqlite"
    command = [
        sys.executable, "-m", "blindreader", "study", "create", str(protocol),
        "--cases", str(cases), "--db", str(db), "--workers", "1",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".study_images.tmp-*/s-*/0001.dcm")):
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "create did not start blinding"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert list(tmp_path.glob(".study_images.tmp-*")), "nothing was left: killed too late"
    assert not db.exists()
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert db.exists()
    assert {p.name for p in tmp_path.iterdir() if p.name.startswith(".")} == set()


def test_worker_count():
    from studies.blinding_job import worker_count

    assert worker_count(None, 340, 10_200, cpus=2) == 1  # measured: a pool is slower there
    assert worker_count(None, 340, 10_200, cpus=8) == 7
    assert worker_count(None, 340, 10_200, cpus=64) == 8
    assert worker_count(None, 4, 100, cpus=8) == 1  # small: not worth starting a pool
    assert worker_count(3, 2, 100) == 2  # never more workers than series
    with pytest.raises(StudyError, match="at least 1"):
        worker_count(0, 2, 100)
