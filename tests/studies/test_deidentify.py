"""De-identification: real DICOM with identifying attributes in, nothing identifying out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from studies.deidentify import (
    DEIDENTIFICATION_METHOD,
    NEUTRAL_TEXT,
    blind_series,
    deidentify_dataset,
)
from studies.dicom_series import read_series
from studies.errors import StudyError
from tests.studies.conftest import IDENTIFYING_TAGS, make_series

KEPT = {"Manufacturer", "ManufacturerModelName"}  # not identifying; compared by the leak scan
# Values long enough not to turn up by chance inside a UID (sex "F", weight "64" are checked
# by attribute below).
IDENTIFYING_STRINGS = [
    str(v)
    for k, v in IDENTIFYING_TAGS.items()
    if k not in KEPT and k not in NEUTRAL_TEXT and len(str(v)) >= 5
] + ["Doe", "Jane", "MRN-0042", "20250102", "EXAMPLE VENDOR", "recon kernel secret"]


def all_text(ds: Dataset) -> str:
    """Every element value of a dataset (recursively), as text."""
    parts: list[str] = []

    def visit(dataset: Dataset, elem: pydicom.DataElement) -> None:
        if elem.VR not in ("SQ", "OB", "OW", "UN"):
            parts.append(str(elem.value))

    ds.walk(visit)
    return "\n".join(parts)


@pytest.fixture
def blinded(tmp_path: Path) -> tuple[list[Path], list[Path], dict[str, str]]:
    sources = make_series(tmp_path / "src", 4, file_name=lambda i: f"orig_{i}.dcm")
    uid_map: dict[str, str] = {}
    out = blind_series(
        read_series(tmp_path / "src"),
        tmp_path / "out",
        opaque_series_id="SER-7f3a",
        opaque_patient_id="SUBJ-0012",
        uid_map=uid_map,
    )
    return sources, out, uid_map


def test_sources_really_carry_identifying_data(tmp_path: Path):
    # Guards the test below: the input must contain what the output must not.
    path = make_series(tmp_path / "src", 1)[0]
    text = all_text(pydicom.dcmread(path))
    for value in IDENTIFYING_STRINGS:
        assert value in text, value


def test_nothing_identifying_remains(blinded):
    _, out, _ = blinded
    for path in out:
        ds = pydicom.dcmread(path)
        text = all_text(ds)
        for value in IDENTIFYING_STRINGS:
            assert value not in text, f"{value!r} left in {path.name}"
        assert str(ds.PatientName) == "SUBJ-0012" and ds.PatientID == "SUBJ-0012"
        for keyword in (
            "PatientBirthDate",
            "PatientSex",
            "PatientAge",
            "PatientWeight",
            "OtherPatientIDs",
            "PatientAddress",
            "InstitutionName",
            "InstitutionAddress",
            "PerformingPhysicianName",
            "OperatorsName",
            "StationName",
            "DeviceSerialNumber",
            "ImageComments",
        ):
            assert keyword not in ds, keyword
        for keyword in (
            "AccessionNumber",
            "ReferringPhysicianName",
            "StudyID",
            "StudyDate",
            "SeriesDate",
            "AcquisitionDate",
            "ContentDate",
            "StudyTime",
            "SeriesTime",
            "AcquisitionTime",
            "ContentTime",
        ):
            assert ds[keyword].value in ("", None), keyword
        assert ds.StudyDescription == NEUTRAL_TEXT["StudyDescription"]
        assert ds.SeriesDescription == NEUTRAL_TEXT["SeriesDescription"]
        assert ds.ProtocolName == NEUTRAL_TEXT["ProtocolName"]
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.DeidentificationMethod == DEIDENTIFICATION_METHOD
        assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
        assert ds.ClinicalTrialSeriesID == "SER-7f3a"
        assert ds.SeriesNumber == 1


def test_private_tags_are_gone(blinded):
    sources, out, _ = blinded
    assert any(elem.tag.is_private for elem in pydicom.dcmread(sources[0]))
    for path in out:
        assert not any(elem.tag.is_private for elem in pydicom.dcmread(path))


def test_uids_are_new_and_consistent_across_the_series(blinded):
    sources, out, uid_map = blinded
    src = [pydicom.dcmread(p) for p in sources]
    dst = [pydicom.dcmread(p) for p in out]
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        assert len({getattr(d, keyword) for d in dst}) == 1, keyword
        assert getattr(dst[0], keyword) != getattr(src[0], keyword)
        assert uid_map[getattr(src[0], keyword)] == getattr(dst[0], keyword)
    sop = [d.SOPInstanceUID for d in dst]
    assert len(set(sop)) == len(sop)
    assert not {s.SOPInstanceUID for s in src} & set(sop)
    for s, d in zip(src, dst, strict=True):
        assert d.SOPClassUID == s.SOPClassUID  # standard UIDs are kept
        assert d.file_meta.MediaStorageSOPInstanceUID == d.SOPInstanceUID
        # References inside sequences follow the same map.
        assert d.ReferencedImageSequence[0].ReferencedSOPInstanceUID == d.SOPInstanceUID
        assert str(d.ReferencedImageSequence[0].PatientName) == ""


def test_shared_uid_map_links_arms_of_one_study(tmp_path: Path):
    study = "1.2.826.0.1.3680043.8.498.1234"
    make_series(tmp_path / "a", 2, study_uid=study)
    make_series(tmp_path / "b", 2, study_uid=study)
    uid_map: dict[str, str] = {}
    out_a = blind_series(
        read_series(tmp_path / "a"),
        tmp_path / "A",
        opaque_series_id="x",
        opaque_patient_id="P",
        uid_map=uid_map,
    )
    out_b = blind_series(
        read_series(tmp_path / "b"),
        tmp_path / "B",
        opaque_series_id="y",
        opaque_patient_id="P",
        uid_map=uid_map,
    )
    a, b = pydicom.dcmread(out_a[0]), pydicom.dcmread(out_b[0])
    assert a.StudyInstanceUID == b.StudyInstanceUID == uid_map[study]
    assert a.SeriesInstanceUID != b.SeriesInstanceUID


def test_opaque_names_slice_order_and_pixels(tmp_path: Path):
    sources = make_series(tmp_path / "src", 3, file_name=lambda i: f"PATIENT_DOE_{9 - i}")
    out = blind_series(
        read_series(tmp_path / "src"),
        tmp_path / "out",
        opaque_series_id="s",
        opaque_patient_id="p",
        uid_map={},
    )
    assert [p.name for p in out] == ["0001.dcm", "0002.dcm", "0003.dcm"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [p.name for p in out]
    for index, (src, dst) in enumerate(zip(sources, out, strict=True), start=1):
        s, d = pydicom.dcmread(src), pydicom.dcmread(dst)
        assert d.InstanceNumber == index
        assert list(d.ImagePositionPatient) == list(s.ImagePositionPatient)
        np.testing.assert_array_equal(d.pixel_array, s.pixel_array)
    assert read_series(tmp_path / "out").files == tuple(out)


def test_overlays_and_dates_in_sequences_are_removed():
    ds = Dataset()
    ds.PatientName = "Doe^Jane"
    ds.add_new(0x60000022, "LO", "overlay note by Dr Who")
    item = Dataset()
    item.StudyDate = "20240101"
    item.InstitutionName = "Example General Hospital"
    item.private_block(0x0011, "EXAMPLE", create=True).add_new(0x01, "LO", "Doe^Jane")
    ds.ReferencedStudySequence = []  # removed entirely
    ds.SourceImageSequence = [item]
    deidentify_dataset(ds, opaque_patient_id="P1", uid_map={})
    assert 0x60000022 not in ds
    assert "ReferencedStudySequence" not in ds
    assert ds.SourceImageSequence[0].StudyDate == ""
    assert "InstitutionName" not in ds.SourceImageSequence[0]
    assert not any(elem.tag.is_private for elem in ds.SourceImageSequence[0])


def test_unreadable_source_is_named(tmp_path: Path):
    make_series(tmp_path / "src", 2)
    info = read_series(tmp_path / "src")
    info.files[1].write_bytes(b"garbage")
    with pytest.raises(StudyError, match=str(info.files[1])):
        blind_series(
            info, tmp_path / "out", opaque_series_id="s", opaque_patient_id="p", uid_map={}
        )
    assert not any(p.name.startswith(".tmp-") for p in (tmp_path / "out").iterdir())


def test_original_attributes_sequence_is_removed():
    # It keeps earlier values of changed attributes: de-identification must not leave them.
    ds = Dataset()
    old = Dataset()
    old.PatientName = "Doe^Jane"
    item = Dataset()
    item.ModifiedAttributesSequence = [old]
    ds.OriginalAttributesSequence = [item]
    ds.AcquisitionDeviceProcessingDescription = "DL denoise level 3"
    deidentify_dataset(ds, opaque_patient_id="P1", uid_map={})
    assert "OriginalAttributesSequence" not in ds
    assert "AcquisitionDeviceProcessingDescription" not in ds
    assert "Doe" not in all_text(ds)
