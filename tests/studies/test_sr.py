"""DICOM SR TID 1500 measurement reports: written per reader, case and arm, valid for dciodvfy
(dicom3tools), read back with pydicom and highdicom, referencing the measured blinded images."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest

from studies.errors import StudyError
from studies.export import roi_frame
from studies.sr import ellipse_axes, export_sr
from studies.store import Store
from tests.dicom_tools import dciodvfy_errors, dciodvfy_messages
from tests.studies.test_export_measurements import db, read_study  # noqa: F401 (fixtures)


def test_ellipse_axes_major_first():
    axes = ellipse_axes([[10, 20], [30, 26]])
    assert np.allclose(axes, [[10, 23], [30, 23], [20, 20], [20, 26]])
    tall = ellipse_axes([[0, 0], [2, 10]])
    assert np.allclose(tall[:2], [[1, 0], [1, 10]])


@pytest.fixture(scope="module")
def written(read_study, tmp_path_factory):  # noqa: F811
    """One SR export of a copy of the read study (SR files hold fresh UIDs: exporting twice
    from copies of one study would give the study's anchor log two different heads)."""
    from tests.studies.study_factory import START, FakeClock

    folder = tmp_path_factory.mktemp("sr")
    shutil.copytree(read_study.parent, folder / "study")
    study = folder / "study" / read_study.name
    with Store.open(study, clock=FakeClock(START)) as store:
        files = export_sr(store, folder / "sr")
        rois = roi_frame(store, unblinded=True)
        assert store.verify().ok
    return files, rois, study


def test_one_report_per_reader_case_and_arm_references_the_measured_images(written):
    import highdicom as hd

    files, rois, _ = written
    assert len(files) == 2 * 2 * 2  # readers x cases x arms
    path = next(p for p in files if p.name == "SR_R2_case02_varnet.dcm")
    ds = pydicom.dcmread(path)
    assert ds.Modality == "SR" and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"
    assert ds.ContentDate == "20261101"  # the study's clock (START), not the system's
    sr = hd.sr.Comprehensive3DSR.from_dataset(ds)
    groups = sr.content.get_planar_roi_measurement_groups()
    assert len(groups) == 4  # muscle, fluid, background, ruler
    expected = rois[
        (rois["reader"] == "R2") & (rois["case"] == "case02") & (rois["arm"] == "varnet")
    ]
    referenced = set()
    for study in ds.CurrentRequestedProcedureEvidenceSequence:
        for series in study.ReferencedSeriesSequence:
            for sop in series.ReferencedSOPSequence:
                referenced.add(str(sop.ReferencedSOPInstanceUID))
    assert len(referenced) == 1  # all four drawn on slice 1 of the one series
    by_name = {}
    for group in groups:
        region = group.roi
        assert region is not None
        image_uid = region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        assert str(image_uid) in referenced
        by_name[str(group.finding_type.value)] = group
    muscle = expected[expected["question"] == "roi_muscle"].iloc[0]
    mean = next(m for m in by_name["muscle"].get_measurements() if m.name.meaning == "Mean")
    assert mean.value == pytest.approx(muscle["mean"])
    graphic = np.asarray(by_name["muscle"].roi.value).reshape(-1, 2)
    assert graphic.shape == (4, 2)
    ruler = expected[expected["question"] == "ruler"].iloc[0]
    length = next(m for m in by_name["ruler"].get_measurements() if m.name.meaning == "Length")
    assert length.value == pytest.approx(ruler["length_mm"])


def test_reports_pass_dciodvfy_without_errors(written):
    files, _, _ = written
    for path in files:
        assert dciodvfy_errors(path) == [], dciodvfy_messages(path)


def test_refusals(db, clock, tmp_path):  # noqa: F811
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with Store.open(db, clock=clock) as store, pytest.raises(StudyError, match="empty folder"):
        export_sr(store, tmp_path / "full")


def test_paired_reads_give_one_report_per_side_arm(tmp_path, clock):
    from studies.api import AnswerKey
    from studies.export import measurements_frame
    from tests.studies.measurement_study import PAIRED_MEASUREMENTS, build

    paired = build(tmp_path, PAIRED_MEASUREMENTS)
    with Store.open(paired, clock=clock) as store:
        view = store.next_assignment("R1")
        assert view is not None
        label = view.sides[0].series[0].label
        for side in ("left", "right"):
            for question, points in (
                ("roi_muscle", [[14, 20], [24, 30]]),
                ("roi_background", [[0.5, 0.5], [6, 6]]),
            ):
                store.record_answer(
                    view.assignment_id,
                    AnswerKey(question, None, side),  # type: ignore[arg-type]
                    {"series": label, "slice": 1, "shape": "ellipse", "points": points},
                )
        frame = measurements_frame(store)
        blinded = measurements_frame(store, unblinded=False)
        files = export_sr(store, tmp_path / "sr")
    assert sorted(frame["arm"]) == ["conv", "varnet"]
    assert sorted(blinded["side"]) == ["left", "right"]
    case = files[0].name.split("_")[2]  # the case R1 reads first
    assert sorted(p.name for p in files) == [f"SR_R1_{case}_conv.dcm", f"SR_R1_{case}_varnet.dcm"]
    for path in files:
        ds = pydicom.dcmread(path)
        assert ds.CodingSchemeIdentificationSequence[-1].CodingSchemeDesignator == "99BLINDREADER"
