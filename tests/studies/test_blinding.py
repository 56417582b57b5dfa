"""Blinding as an adversary tests it: identifying attributes planted in both arms, arm leaks
planted in one arm, then ``study create`` and a search of every blinded file (raw bytes too)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import RLELossless, SecondaryCaptureImageStorage

from studies.blinded_dicom import (
    DEIDENTIFICATION_CODES,
    DEIDENTIFICATION_METHOD,
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
)
from studies.create import create_study
from studies.errors import StudyError
from tests.dicom_tools import dciodvfy_errors, dciodvfy_messages
from tests.studies.conftest import make_series, write_cases_csv

PROTOCOL = """
title = "Blinding test"
design = "sequential"
seed = 3
washout_days = 28

[[arms]]
code = "conv"
description = "Conventional SENSE reconstruction"
reference = true

[[arms]]
code = "dl"
description = "Deep-learning reconstruction"

[[readers]]
id = "R1"
name = "Reader One"

[[questions]]
id = "quality"
text = "Overall image quality"
type = "likert"
points = 4
labels = ["Non-diagnostic", "Limited", "Good", "Excellent"]
"""

#: What differs between two blinded series by construction: random UIDs and opaque ids.
RANDOM = {
    "MediaStorageSOPInstanceUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "FrameOfReferenceUID",
    "PatientName",
    "PatientID",
    "ClinicalTrialSeriesID",
}

Mutation = Callable[[Path], None]


def build(
    folder: Path,
    *,
    n_cases: int = 1,
    tags: dict[str, dict[str, object]] | None = None,
    mutate: dict[str, Mutation] | None = None,
    **series: object,
) -> tuple[Path, Path]:
    """Protocol and CASES.csv; both arms of a case get the same pixels (same seed) unless told.

    ``tags[arm]`` are passed to ``make_series`` for that arm; ``mutate[arm](folder)`` changes
    the written series afterwards.
    """
    protocol = folder / "protocol.toml"
    protocol.write_text(PROTOCOL, encoding="utf-8")
    rows = []
    for i in range(n_cases):
        study_uid = pydicom.uid.generate_uid()
        for arm in ("conv", "dl"):
            target = folder / "src" / f"case{i}" / arm
            options: dict[str, object] = {"n_slices": 3, "study_uid": study_uid, "seed": i}
            options.update(series)
            options.update((tags or {}).get(arm, {}))
            make_series(target, **options)  # type: ignore[arg-type]
            if mutate and arm in mutate:
                mutate[arm](target)
            rows.append(
                {
                    "case_id": f"C{i}",
                    "subject_id": f"P{i}",
                    "arm": arm,
                    "series_dir": f"src/case{i}/{arm}",
                }
            )
    return protocol, write_cases_csv(folder / "CASES.csv", rows)


def blinded_series(db: Path) -> dict[tuple[str, str], list[Path]]:
    """``(case_id, arm) -> blinded files`` from the study database."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute(
            'select c.case_id, a.code, s.folder from series s join "case" c on c.id = s.case_pk '
            "join arm a on a.id = s.arm_pk"
        ).fetchall()
    finally:
        con.close()
    images = db.parent / f"{db.stem}_images"
    return {(c, a): sorted((images / f).iterdir()) for c, a, f in rows}


def every_file(db: Path) -> list[Path]:
    return [p for p in (db.parent / f"{db.stem}_images").rglob("*") if p.is_file()]


def rewrite(folder: Path, change: Callable[[Dataset], None]) -> None:
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        change(ds)
        ds.save_as(path, enforce_file_format=True)


# -- identifying attributes -------------------------------------------------------------------

#: Planted in both arms; none of these values may appear in any blinded file.
PHI: dict[str, str] = {
    "PatientName": "Quixote^Alonso",
    "PatientID": "MRN-904412",
    "PatientBirthDate": "19610203",
    "PatientAge": "063Y",
    "PatientWeight": "71.5",
    "PatientSize": "1.82",
    "PatientAddress": "12 Calle Mayor, Toboso",
    "PatientTelephoneNumbers": "+34-555-0199",
    "PatientMotherBirthName": "Cervantes^Leonor",
    "OtherPatientNames": "Knight^Sorrowful",
    "EthnicGroup": "Castilian",
    "Occupation": "Hidalgo-knight",
    "AdditionalPatientHistory": "fell off Rocinante in 2019",
    "PatientComments": "believes windmills are giants",
    "MedicalAlerts": "lance injuries",
    "Allergies": "penicillin-xx",
    "AccessionNumber": "ACC-5539912",
    "StudyID": "STUDY-8841",
    "StudyDate": "20240517",
    "SeriesDate": "20240518",
    "AcquisitionDate": "20240519",
    "ContentDate": "20240520",
    "StudyTime": "101112",
    "SeriesTime": "101530",
    "AcquisitionTime": "101531.25",
    "ContentTime": "101533",
    "AcquisitionDateTime": "20240521101531",
    "InstitutionName": "Hospital de La Mancha",
    "InstitutionAddress": "Plaza 1, Argamasilla",
    "InstitutionalDepartmentName": "Radiologia Rocinante",
    "ReferringPhysicianName": "Carrasco^Sanson",
    "PerformingPhysicianName": "Perez^Pedro",
    "NameOfPhysiciansReadingStudy": "Nicolas^Maese",
    "OperatorsName": "Panza^Sancho",
    "PhysiciansOfRecord": "Barbero^Maese",
    "RequestingPhysician": "Quijano^Cura",
    "RequestingService": "Orthopaedics Toboso",
    "StationName": "MANCHA-MR3",
    "DeviceSerialNumber": "SN-4411902",
    "StudyDescription": "KNEE LEFT ROCINANTE",
    "SeriesDescription": "PD FS Dulcinea",
    "ProtocolName": "mancha_knee_proto",
    "RequestedProcedureDescription": "MRI knee for Quixote",
    "PerformedProcedureStepDescription": "knee exam of Alonso",
    "ImageComments": "patient Quixote moved",
    "ClinicalTrialSubjectID": "MRN-904412",
    "ClinicalTrialSponsorName": "Sponsor Sanchica",
    "DerivationDescription": "derived at Mancha lab",
    "SoftwareVersions": "syngo-MANCHA-42",
    "Manufacturer": "Vendor Galeote",
    "ManufacturerModelName": "Mancha Model 3T",
}
#: Planted in sequences, private elements, overlays and the file meta.
NESTED: dict[str, str] = {
    "issuer of accession": "2.16.840.1.113883.3.5599",
    "issuer namespace": "Hospital Toboso Ns",
    "issuer of patient id": "2.16.840.1.113883.3.7712",
    "contribution": "de-identified by Quixote^Alonso",
    "contributing station": "ALONSO-WS7",
    "request id": "REQ-77123",
    "scheduled step": "SPS-55190",
    "referenced name": "Dulcinea^Toboso",
    "private name": "Alonso Quixano MRN-904412",
    "private in sequence": "Aldonza Lorenzo",
    "overlay": "overlay by Dr Sanson",
    "source AE": "MANCHA_AE01",
    "implementation version": "QUIXOTE_V1.2",
}


def plant_phi(ds: Dataset) -> None:
    for keyword, value in PHI.items():
        setattr(ds, keyword, value)
    issuer = Dataset()
    issuer.UniversalEntityID = NESTED["issuer of accession"]
    issuer.LocalNamespaceEntityID = NESTED["issuer namespace"]
    issuer.UniversalEntityIDType = "ISO"
    ds.IssuerOfAccessionNumberSequence = [issuer]
    qualifiers = Dataset()
    qualifiers.UniversalEntityID = NESTED["issuer of patient id"]
    qualifiers.UniversalEntityIDType = "ISO"
    ds.IssuerOfPatientIDQualifiersSequence = [qualifiers]
    equipment = Dataset()
    equipment.ContributionDescription = NESTED["contribution"]
    equipment.StationName = NESTED["contributing station"]
    equipment.Manufacturer = "Vendor Galeote"
    ds.ContributingEquipmentSequence = [equipment]
    request = Dataset()
    request.RequestedProcedureID = NESTED["request id"]
    request.ScheduledProcedureStepID = NESTED["scheduled step"]
    ds.RequestAttributesSequence = [request]
    reference = Dataset()
    reference.ReferencedSOPClassUID = ds.SOPClassUID
    reference.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    reference.PatientName = NESTED["referenced name"]
    reference.private_block(0x0011, "MANCHA", create=True).add_new(
        0x01, "LO", NESTED["private in sequence"]
    )
    ds.ReferencedImageSequence = [reference]
    ds.private_block(0x0009, "MANCHA", create=True).add_new(0x10, "LT", NESTED["private name"])
    ds.add_new(0x60000022, "LO", NESTED["overlay"])
    ds.file_meta.SourceApplicationEntityTitle = NESTED["source AE"]
    ds.file_meta.ImplementationVersionName = NESTED["implementation version"]


def test_no_planted_identifying_value_survives_anywhere(tmp_path: Path, clock) -> None:
    protocol, cases = build(tmp_path, n_cases=2, mutate={a: plant(a) for a in ("conv", "dl")})
    sources = sorted((tmp_path / "src").rglob("*.dcm"))
    source_uids = set()
    for path in sources:
        raw = path.read_bytes()
        assert b"Quixote^Alonso" in raw and b"MANCHA_AE01" in raw  # the plant took
        ds = pydicom.dcmread(path)
        source_uids |= {
            str(ds.StudyInstanceUID),
            str(ds.SeriesInstanceUID),
            str(ds.SOPInstanceUID),
            str(ds.FrameOfReferenceUID),
        }
    db = tmp_path / "study.sqlite"
    create_study(protocol, cases, db, clock=clock)
    values = [*PHI.values(), *NESTED.values(), *source_uids, "Quixote", "Alonso", "Mancha"]
    values += [v.replace("^", " ") for v in values if "^" in v]
    files = every_file(db)
    assert len(files) == 2 * 2 * 3
    for path in files:
        raw = path.read_bytes()
        lowered = raw.lower()
        for value in values:
            assert value.encode().lower() not in lowered, f"{value!r} in the bytes of {path}"
        ds = pydicom.dcmread(path)
        assert not any(elem.tag.is_private for elem in ds.iterall())
        assert not any(0x6000 <= elem.tag.group <= 0x60FF for elem in ds)
        assert "SourceApplicationEntityTitle" not in ds.file_meta
        for keyword in ("PatientSex", "PatientBirthDate", "StudyDate", "AccessionNumber"):
            assert ds[keyword].value in ("", None)
        for keyword in ("OtherPatientIDs", "InstitutionName", "ContributingEquipmentSequence"):
            assert keyword not in ds
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.DeidentificationMethod == DEIDENTIFICATION_METHOD
        codes = [
            (c.CodeValue, c.CodingSchemeDesignator) for c in ds.DeidentificationMethodCodeSequence
        ]
        assert codes == [(value, "DCM") for value, _ in DEIDENTIFICATION_CODES]
        assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    # The file names say nothing either.
    assert all(p.name[:4].isdigit() and p.parent.name.startswith("s-") for p in files)


def plant(arm: str) -> Mutation:
    return lambda folder: rewrite(folder, plant_phi)


def test_blinded_files_validate_and_read_back(tmp_path: Path, clock) -> None:
    protocol, cases = build(
        tmp_path, rows=16, cols=12, RescaleSlope=2, RescaleIntercept=-10, BitsStored=16
    )
    db = tmp_path / "study.sqlite"
    create_study(protocol, cases, db, clock=clock)
    for (_case, arm), files in blinded_series(db).items():
        source = sorted((tmp_path / "src" / "case0" / arm).iterdir())
        raw = np.stack([pydicom.dcmread(p).pixel_array.astype(float) * 2 - 10 for p in source])
        low = min(0.0, raw.min())
        expected = np.rint((raw - low) * 65535 / (raw.max() - low))
        stored = np.stack([pydicom.dcmread(p).pixel_array for p in files])
        np.testing.assert_array_equal(stored, expected)
        ds = pydicom.dcmread(files[0])
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.SOPClassUID == pydicom.uid.MRImageStorage
        assert ds.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
        assert ds.file_meta.ImplementationVersionName == IMPLEMENTATION_VERSION_NAME
        assert (ds.Rows, ds.Columns, ds.BitsStored) == (16, 12, 16)
        assert "RescaleSlope" not in ds and "LargestImagePixelValue" not in ds
        low_w, high_w = np.percentile(stored, [1, 99])
        assert float(ds.WindowCenter) == round((low_w + high_w) / 2)
        assert [int(pydicom.dcmread(p).InstanceNumber) for p in files] == [1, 2, 3]
    for path in every_file(db):
        report = dciodvfy_messages(path)
        assert dciodvfy_errors(path) == [], f"{path}: {report}"
        assert any("MRImage" in line for line in report)


def test_series_without_orientation_are_secondary_capture_in_every_arm(
    tmp_path: Path, clock
) -> None:
    """One arm without orientation: neither arm gets any (none is invented, and the SOP class
    says nothing about the arm); the files still validate and read back in slice order."""
    protocol, cases = build(tmp_path, rows=16, cols=12, mutate={"dl": _no_geometry})
    db = tmp_path / "study.sqlite"
    create_study(protocol, cases, db, clock=clock)
    for (_case, _arm), files in blinded_series(db).items():
        for index, path in enumerate(files, start=1):
            ds = pydicom.dcmread(path)
            assert ds.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
            assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
            assert ds.Modality == "MR" and ds.ConversionType == "WSD"
            assert ds.BurnedInAnnotation == "NO" and ds.InstanceNumber == index
            for keyword in (
                "ImageOrientationPatient",
                "ImagePositionPatient",
                "FrameOfReferenceUID",
            ):
                assert keyword not in ds, keyword
            assert [float(v) for v in ds.PixelSpacing] == [0.5, 0.5]
    for path in every_file(db):
        assert dciodvfy_errors(path) == [], f"{path}: {dciodvfy_messages(path)}"


# -- arm leaks, planted on the AI arm only ----------------------------------------------------


def _rle(folder: Path) -> None:
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        ds.compress(RLELossless)
        ds.save_as(path, enforce_file_format=True)


def _secondary_capture(burned: str | None) -> Mutation:
    def change(ds: Dataset) -> None:
        ds.SOPClassUID = SecondaryCaptureImageStorage
        ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
        if burned is not None:
            ds.BurnedInAnnotation = burned

    return lambda folder: rewrite(folder, change)


def _file_meta(**values: str) -> Mutation:
    def change(ds: Dataset) -> None:
        for keyword, value in values.items():
            setattr(ds.file_meta, keyword, value)

    return lambda folder: rewrite(folder, change)


def _no_geometry(folder: Path) -> None:
    """The arm has no orientation or position (a reconstruction of a fastMRI file)."""

    def drop(ds: Dataset) -> None:
        for keyword in ("ImageOrientationPatient", "ImagePositionPatient", "FrameOfReferenceUID"):
            if keyword in ds:
                delattr(ds, keyword)

    rewrite(folder, drop)


def _rescaled(folder: Path) -> None:
    # Same real values stored twice as large with slope 0.5: the arm's own scale.
    def change(ds: Dataset) -> None:
        ds.PixelData = (ds.pixel_array.astype(np.uint16) * 2).tobytes()
        ds.BitsStored, ds.HighBit, ds.RescaleSlope, ds.RescaleIntercept = 16, 15, 0.5, 0

    rewrite(folder, change)


def _quantised(folder: Path) -> None:
    def change(ds: Dataset) -> None:
        ds.PixelData = ((ds.pixel_array // 256) * 256).astype(np.uint16).tobytes()

    rewrite(folder, change)


def _private(text: str) -> Mutation:
    def change(ds: Dataset) -> None:
        ds.private_block(0x0043, "GEMS_PARM_01", create=True).add_new(0x01, "LO", text)

    return lambda folder: rewrite(folder, change)


def _overlay(folder: Path) -> None:
    def change(ds: Dataset) -> None:
        ds.add_new(0x60000010, "US", 8)
        ds.add_new(0x60000011, "US", 8)
        ds.add_new(0x60000022, "LO", "network output")
        ds.add_new(0x60003000, "OW", b"\xff" * 8)

    rewrite(folder, change)


IDENTICAL = "identical"
#: (kind, make_series tags of the AI arm, mutation of its files, expected: IDENTICAL or the
#: words the refusal must contain).
LEAKS: list[tuple[str, dict[str, object], Mutation | None, str]] = [
    ("transfer syntax (RLE)", {}, _rle, IDENTICAL),
    ("orientation and position missing", {}, _no_geometry, IDENTICAL),
    ("secondary capture, burned-in unknown", {}, _secondary_capture(None), "Secondary Capture"),
    ("secondary capture, BurnedInAnnotation NO", {}, _secondary_capture("NO"), IDENTICAL),
    ("file meta AE title", {}, _file_meta(SourceApplicationEntityTitle="MRC40213"), IDENTICAL),
    (
        "file meta implementation",
        {},
        _file_meta(ImplementationVersionName="VENDOR_2.1", ImplementationClassUID="1.2.3.4.5"),
        IDENTICAL,
    ),
    ("window", {"WindowCenter": 900, "WindowWidth": 1500}, None, IDENTICAL),
    ("acquisition duration", {"AcquisitionDuration": 61.0}, None, IDENTICAL),
    ("phase encoding steps", {"NumberOfPhaseEncodingSteps": 64}, None, IDENTICAL),
    ("percent sampling", {"PercentSampling": 25}, None, IDENTICAL),
    ("spacing between slices", {"SpacingBetweenSlices": 3.3}, None, IDENTICAL),
    (
        "largest pixel value",
        {"LargestImagePixelValue": 4095, "SmallestImagePixelValue": 3},
        None,
        IDENTICAL,
    ),
    ("vendor DL term", {"ProtocolName": "t2_tse_cor_DeepResolve"}, None, "deepresolve"),
    ("arm keyword inside a longer word", {"ProtocolName": "knee_PDdl_cor"}, None, "'dl'"),
    ("arm description", {"ImageComments": "deep learning reconstruction"}, None, "arm description"),
    ("series number", {"SeriesNumber": 1003}, None, IDENTICAL),
    ("software versions", {"SoftwareVersions": "VE11E"}, None, IDENTICAL),
    ("image type", {"ImageType": ["DERIVED", "PRIMARY", "M", "DL"]}, None, "ImageType"),
    (
        "manufacturer",
        {"Manufacturer": "OtherVendor", "ManufacturerModelName": "Z"},
        None,
        IDENTICAL,
    ),
    ("acquisition time", {"AcquisitionTime": "120000", "SeriesTime": "120001"}, None, IDENTICAL),
    ("bit depth and signedness", {"BitsStored": 16, "HighBit": 15}, None, IDENTICAL),
    ("rescale", {}, _rescaled, IDENTICAL),
    ("private recon name", {}, _private("AIR Recon DL 75%"), "AIR"),
    ("private neutral value", {}, _private("level 3"), IDENTICAL),
    ("overlay text", {}, _overlay, IDENTICAL),
    ("matrix", {"rows": 16, "cols": 8}, None, "matrix"),
    ("pixel spacing", {"pixel_spacing": (0.25, 0.25)}, None, "pixel spacing"),
    ("slice count", {"n_slices": 4}, None, "slice count"),
    ("slice thickness", {"slice_thickness": 1.5, "slice_gap": 1.5}, None, "slice thickness"),
    ("slice spacing", {"slice_gap": 0.5}, None, "slice spacing"),
    ("grey levels (8-bit arm)", {}, _quantised, "grey levels"),
]


@pytest.mark.parametrize(
    ("tags", "mutation", "expected"), [x[1:] for x in LEAKS], ids=[x[0] for x in LEAKS]
)
def test_an_arm_leak_is_refused_or_blinded_away(
    tmp_path: Path, clock, tags: dict[str, object], mutation: Mutation | None, expected: str
) -> None:
    size = {"rows": 32, "cols": 32}  # enough pixels for 12-bit data to use > 1000 grey levels
    protocol, cases = build(
        tmp_path, tags={"conv": size, "dl": {**size, **tags}},
        mutate={"dl": mutation} if mutation else None,
    )  # fmt: skip
    db = tmp_path / "study.sqlite"
    if expected != IDENTICAL:
        before = set(tmp_path.iterdir())
        with pytest.raises(StudyError) as info:
            create_study(protocol, cases, db, clock=clock)
        message = str(info.value)
        assert "\n" not in message and expected in message, message
        assert "arm dl" in message and str(tmp_path / "src" / "case0" / "dl") in message
        assert set(tmp_path.iterdir()) == before
        return
    create_study(protocol, cases, db, clock=clock)
    series = blinded_series(db)
    conv, dl = series[("C0", "conv")], series[("C0", "dl")]
    assert len(conv) == len(dl) == 3
    for a_path, b_path in zip(conv, dl, strict=True):
        a, b = pydicom.dcmread(a_path), pydicom.dcmread(b_path)
        assert _without_random(a) == _without_random(b)
        assert a.PixelData == b.PixelData
        assert a_path.stat().st_size == b_path.stat().st_size
        assert a.SeriesInstanceUID != b.SeriesInstanceUID and a.PatientID != b.PatientID


def _without_random(ds: Dataset) -> dict[str, object]:
    values = {}
    for elem in [*ds.file_meta, *ds]:
        if elem.keyword not in RANDOM:
            values[elem.keyword or str(elem.tag)] = str(elem.value)
    return values


def test_the_leaks_cover_the_issue(tmp_path: Path) -> None:
    # Guard: 19 kinds measured in issue 11, the 10 then missed among them.
    assert len(LEAKS) >= 19
    names = " ".join(x[0] for x in LEAKS)
    for missed in (
        "RLE", "secondary capture", "AE title", "implementation", "window",
        "acquisition duration", "phase encoding", "percent sampling", "spacing between slices",
        "largest pixel", "vendor DL term", "inside a longer word",
    ):  # fmt: skip
        assert missed in names


# -- burned-in annotation ---------------------------------------------------------------------


def test_burned_in_annotation_is_refused_unless_allowed_with_a_reason(tmp_path: Path, clock):
    protocol, cases = build(tmp_path, tags={"dl": {"BurnedInAnnotation": "YES"}})
    before = set(tmp_path.iterdir())
    db = tmp_path / "study.sqlite"
    with pytest.raises(StudyError) as info:
        create_study(protocol, cases, db, clock=clock)
    message = str(info.value)
    assert (
        "burned-in" in message
        and "--allow-burned-in" in message
        and "BurnedInAnnotation is YES" in message
    )
    assert "case C0, arm dl" in message and "line 3" in message
    assert set(tmp_path.iterdir()) == before
    with pytest.raises(StudyError, match="needs a reason"):
        create_study(protocol, cases, db, allow_burned_in=" ", clock=clock)
    summary = create_study(
        protocol, cases, db, allow_burned_in="orientation labels only", clock=clock
    )
    assert summary.n_burned_in_allowed == 1
    con = sqlite3.connect(db)
    payload = con.execute(
        "select payload_json from event where kind = 'burned_in_allowed'"
    ).fetchone()
    con.close()
    assert "orientation labels only" in payload[0] and "BurnedInAnnotation is YES" in payload[0]
