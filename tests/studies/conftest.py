"""Helpers for study tests: real DICOM series and CASES.csv files written to disk.

``make_series(folder, n_slices, rows, cols, **tags)`` writes a small MR series (one file per
slice, real pixel data, a DICOM preamble and file meta) that carries identifying attributes and
a private block by default, so de-identification and leak scans have something to remove.
``write_cases_csv(path, rows)`` writes a CASES.csv from dicts. ``knee_protocol`` /
``paired_protocol`` are the shipped protocols. Reused by other study tests: keep it general.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from studies.protocol import Protocol, load_protocol

PROTOCOLS_DIR = Path(__file__).resolve().parents[2] / "studies" / "protocols"
KNEE_PROTOCOL = PROTOCOLS_DIR / "knee-interchangeability.toml"
PAIRED_PROTOCOL = PROTOCOLS_DIR / "paired-image-quality.toml"

#: Identifying attributes every made series carries unless overridden (all fictitious).
IDENTIFYING_TAGS: dict[str, object] = {
    "PatientName": "Doe^Jane",
    "PatientID": "MRN-0042",
    "PatientBirthDate": "19700314",
    "PatientSex": "F",
    "PatientAge": "056Y",
    "PatientWeight": "64",
    "OtherPatientIDs": "ALT-77",
    "PatientAddress": "1 Example Street, Exampletown",
    "InstitutionName": "Example General Hospital",
    "InstitutionAddress": "2 Hospital Road, Exampletown",
    "ReferringPhysicianName": "Smith^John",
    "PerformingPhysicianName": "Jones^Ann",
    "OperatorsName": "Tech^Tom",
    "AccessionNumber": "ACC123456",
    "StudyID": "STUDY77",
    "StudyDate": "20250102",
    "SeriesDate": "20250102",
    "AcquisitionDate": "20250102",
    "ContentDate": "20250102",
    "StudyTime": "081500",
    "SeriesTime": "082000",
    "AcquisitionTime": "082010",
    "ContentTime": "082011",
    "StationName": "MRI-SCANNER-3",
    "DeviceSerialNumber": "SN-998877",
    "StudyDescription": "KNEE RIGHT ROUTINE",
    "SeriesDescription": "PD FS COR",
    "ProtocolName": "knee_pd_fs_cor",
    "Manufacturer": "ExampleVendor",
    "ManufacturerModelName": "Model X 3T",
    "ImageComments": "patient moved slightly",
}


def make_series(
    folder: Path,
    n_slices: int = 3,
    rows: int = 8,
    cols: int = 8,
    *,
    pixel_spacing: tuple[float, float] = (0.5, 0.5),
    slice_thickness: float = 3.0,
    slice_gap: float = 0.0,
    study_uid: str | None = None,
    series_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    private: bool = True,
    identifying: bool = True,
    file_name: Callable[[int], str] = lambda i: f"slice{i:03d}.dcm",
    seed: int = 0,
    **tags: object,
) -> list[Path]:
    """Write a small MR series (one file per slice) and return its files in slice order.

    Parameters
    ----------
    folder
        Where to write (created if needed).
    n_slices, rows, cols
        Number of slices and the matrix.
    pixel_spacing, slice_thickness, slice_gap
        Geometry: positions step by ``slice_thickness + slice_gap`` along z (axial orientation).
    study_uid, series_uid, frame_of_reference_uid
        UIDs to use (fresh ones when None); pass the same study UID to make arms of one exam.
    private
        Add a private block (group 0x0029, creator "EXAMPLE VENDOR") with identifying text.
    identifying
        Add :data:`IDENTIFYING_TAGS` (fictitious patient, institution, dates ...).
    file_name
        Maps the 0-based slice index to a file name.
    seed
        Seeds the pixel values (``numpy.random.default_rng``).
    **tags
        Further attributes by keyword, set on every slice (override the defaults); a value of
        None deletes the attribute.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    frame_of_reference_uid = frame_of_reference_uid or generate_uid()
    paths: list[Path] = []
    for index in range(n_slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        sop_uid = generate_uid()
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_of_reference_uid
        ds.Modality = "MR"
        ds.SeriesNumber = 3
        ds.InstanceNumber = index + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0.0, 0.0, index * (slice_thickness + slice_gap)]
        ds.SliceLocation = index * (slice_thickness + slice_gap)
        ds.PixelSpacing = list(pixel_spacing)
        ds.SliceThickness = slice_thickness
        ds.Rows = rows
        ds.Columns = cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        pixels = rng.integers(0, 4096, size=(rows, cols), dtype=np.uint16)
        ds.PixelData = pixels.tobytes()
        if identifying:
            for keyword, value in IDENTIFYING_TAGS.items():
                setattr(ds, keyword, value)
            ref = Dataset()
            ref.ReferencedSOPClassUID = MRImageStorage
            ref.ReferencedSOPInstanceUID = sop_uid
            ref.PatientName = "Doe^Jane"
            ds.ReferencedImageSequence = [ref]
        if private:
            block = ds.private_block(0x0029, "EXAMPLE VENDOR", create=True)
            block.add_new(0x10, "LO", "Doe^Jane MRN-0042")
            block.add_new(0x11, "LO", "recon kernel secret")
        for keyword, value in tags.items():
            if value is None:
                if keyword in ds:
                    delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
        path = folder / file_name(index)
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
    return paths


def write_cases_csv(
    path: Path, rows: Iterable[Mapping[str, object]], columns: list[str] | None = None
) -> Path:
    """Write a CASES.csv; ``columns`` defaults to the keys of the first row, in order."""
    rows = list(rows)
    if columns is None:
        columns = list(rows[0]) if rows else ["case_id", "subject_id", "arm", "series_dir"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return path


@pytest.fixture(scope="session")
def knee_protocol() -> Protocol:
    """The shipped sequential knee interchangeability protocol."""
    return load_protocol(KNEE_PROTOCOL)


@pytest.fixture(scope="session")
def paired_protocol() -> Protocol:
    """The shipped paired image-quality protocol."""
    return load_protocol(PAIRED_PROTOCOL)
