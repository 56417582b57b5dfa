"""The allow-list writer: one pixel rule, one window rule, numbers re-formatted, new UIDs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset

from studies.blinded_dicom import (
    MAX_STORED,
    PER_SERIES_ATTRIBUTES,
    BlindedIdentity,
    decode_pixels,
    format_ds,
    grey_levels,
    new_uid,
    to_stored,
    window_of,
    write_blinded_series,
)
from studies.dicom_series import read_series
from studies.errors import StudyError
from tests.studies.conftest import make_series

IDENTITY = BlindedIdentity("p-0123456789ab", str(new_uid()), "s-0123456789ab", "salt")


def test_zero_stays_zero_and_the_maximum_maps_to_full_scale():
    a = np.array([[0.0, 10.0], [20.0, 40.0]])
    b = np.array([[5.0, 0.0], [30.0, 35.0]])
    stored = to_stored([a, b])
    assert stored.dtype == np.uint16
    assert stored[0, 0, 0] == 0 and stored.max() == MAX_STORED
    np.testing.assert_array_equal(stored[0], np.rint(a / 40 * MAX_STORED))
    assert stored[1, 0, 0] == round(5 / 40 * MAX_STORED)  # one scale for the whole series


def test_negative_values_shift_up_and_a_blank_series_stays_blank():
    stored = to_stored([np.array([[-100.0, 0.0], [100.0, 300.0]])])
    assert stored.min() == 0 and stored.max() == MAX_STORED
    assert stored[0, 0, 1] == round(100 / 400 * MAX_STORED)
    assert to_stored([np.full((2, 2), 7.0)]).min() == MAX_STORED  # zero is kept as zero
    assert to_stored([np.zeros((2, 2))]).max() == 0


@settings(max_examples=50, deadline=None)
@given(
    scale=st.floats(0.01, 100.0),
    offset=st.floats(0.0, 1000.0),
    seed=st.integers(0, 2**16),
)
def test_the_rule_ignores_the_arm_s_own_scale(scale: float, offset: float, seed: int):
    # The same image stored at another scale (slope) comes out the same; an offset that keeps
    # values non-negative only moves zero, which the rule keeps.
    image = np.random.default_rng(seed).integers(0, 4096, size=(2, 6, 6)).astype(float)
    reference = to_stored(list(image))
    np.testing.assert_allclose(to_stored(list(image * scale)), reference, atol=1)
    assert to_stored(list(image + offset)).max() == MAX_STORED


def test_window_is_the_1st_to_99th_percentile():
    volume = np.arange(10_000, dtype=np.uint16).reshape(1, 100, 100)
    center, width = window_of(volume)
    low, high = np.percentile(volume, [1, 99])
    assert center == round((low + high) / 2) and width == round(high - low)
    assert window_of(np.zeros((1, 4, 4), dtype=np.uint16))[1] == 1.0


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.5, "0.5"),
        (3.0, "3"),
        (-0.0, "0"),
        (-1e-9, "0"),
        (123.4567891, "123.456789"),
        (-2.25, "-2.25"),
    ],
)
def test_decimal_strings_are_spelt_one_way(value: float, text: str):
    assert format_ds(value) == text and len(text) <= 16


def test_uids_are_64_characters_random_or_derived():
    uids = {str(new_uid()) for _ in range(200)}
    assert len(uids) == 200 and {len(u) for u in uids} == {64}
    assert all(pydicom.uid.UID(u).is_valid for u in uids)
    assert new_uid("a", "b") == new_uid("a", "b") != new_uid("a", "c")
    assert len(new_uid("a", "b")) == 64


def test_grey_levels_follow_the_bit_depth_not_the_pixel_count():
    rng = np.random.default_rng(1)
    twelve = rng.integers(0, 4096, size=(3, 32, 32)).astype(float)
    eight = (twelve // 16) * 16  # 256 levels
    assert grey_levels(to_stored(list(twelve))) == 4097
    assert 250 <= grey_levels(to_stored(list(eight))) <= 260
    assert grey_levels(to_stored(list(twelve[:, :8, :8]))) > 2000  # fewer pixels, same depth
    assert grey_levels(np.zeros((1, 2, 2), dtype=np.uint16)) == 1


def _dataset(**values: object) -> Dataset:
    ds = pydicom.dcmread(make_series(_dataset.folder, 1)[0])  # type: ignore[attr-defined]
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def test_decoding_applies_rescale_inverts_monochrome1_and_reads_signed(tmp_path: Path):
    _dataset.folder = tmp_path  # type: ignore[attr-defined]
    ds = _dataset(RescaleSlope=2, RescaleIntercept=-10)
    raw = ds.pixel_array.astype(float)
    np.testing.assert_array_equal(decode_pixels(Path("x.dcm"), ds), raw * 2 - 10)
    ds = _dataset(PhotometricInterpretation="MONOCHROME1")
    np.testing.assert_array_equal(decode_pixels(Path("x.dcm"), ds), -ds.pixel_array.astype(float))
    ds = _dataset(PixelRepresentation=1, BitsStored=16, HighBit=15)
    ds.PixelData = np.array([[-5, 7] * 4] * 8, dtype=np.int16).tobytes()
    assert decode_pixels(Path("x.dcm"), ds).min() == -5


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"SamplesPerPixel": 3, "PhotometricInterpretation": "RGB"}, "only greyscale"),
        ({"NumberOfFrames": 4}, "multi-frame"),
        ({"BitsAllocated": 12}, "BitsAllocated 12"),
        ({"Rows": 0}, "not a plausible image"),
    ],
)
def test_what_cannot_be_decoded_is_named(tmp_path: Path, values: dict, words: str):
    _dataset.folder = tmp_path  # type: ignore[attr-defined]
    with pytest.raises(StudyError, match=f"^x.dcm: .*{words}"):
        decode_pixels(Path("x.dcm"), _dataset(**values))


def test_write_reads_back_with_its_geometry_and_identity(tmp_path: Path):
    make_series(tmp_path / "src", 3, 8, 6, pixel_spacing=(0.4, 0.3), slice_thickness=2.5)
    info = read_series(tmp_path / "src")
    written = write_blinded_series(info.files, tmp_path / "out", IDENTITY)
    assert [p.name for p in written.files] == ["0001.dcm", "0002.dcm", "0003.dcm"]
    for index, (path, source) in enumerate(zip(written.files, info.files, strict=True), 1):
        ds, src = pydicom.dcmread(path), pydicom.dcmread(source)
        assert ds.InstanceNumber == index
        assert [float(v) for v in ds.ImagePositionPatient] == [
            float(v) for v in src.ImagePositionPatient
        ]
        assert [float(v) for v in ds.PixelSpacing] == [0.4, 0.3] and float(ds.SliceThickness) == 2.5
        assert str(ds.PatientName) == ds.PatientID == IDENTITY.patient_id
        assert ds.StudyInstanceUID == IDENTITY.study_uid
        assert ds.ClinicalTrialSeriesID == IDENTITY.series_id
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        np.testing.assert_array_equal(ds.pixel_array, written.volume[index - 1])
    uids = {pydicom.dcmread(p).SeriesInstanceUID for p in written.files}
    frames = {pydicom.dcmread(p).FrameOfReferenceUID for p in written.files}
    assert len(uids) == 1 and len(frames) == 1
    assert frames != {pydicom.dcmread(info.files[0]).FrameOfReferenceUID}
    assert read_series(tmp_path / "out").files == written.files


def test_headers_hold_the_allow_list_only(tmp_path: Path):
    make_series(tmp_path / "src", 2, AcquisitionDuration=60.0, PercentSampling=25)
    info = read_series(tmp_path / "src")
    headers = write_blinded_series(info.files, tmp_path / "out", IDENTITY).headers
    keywords = {e.keyword for e in headers[0]} | {e.keyword for e in headers[0].file_meta}
    allowed = PER_SERIES_ATTRIBUTES | {
        "FileMetaInformationGroupLength", "FileMetaInformationVersion", "MediaStorageSOPClassUID",
        "TransferSyntaxUID", "ImplementationClassUID", "ImplementationVersionName", "SOPClassUID",
        "PatientBirthDate", "PatientSex", "PatientIdentityRemoved", "DeidentificationMethod",
        "DeidentificationMethodCodeSequence", "LongitudinalTemporalInformationModified",
        "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
        "StudyDescription", "Modality", "SeriesNumber", "Laterality", "PatientPosition",
        "SeriesDescription", "ProtocolName", "ClinicalTrialCoordinatingCenterName",
        "PositionReferenceIndicator", "Manufacturer", "ImageOrientationPatient",
        "ImagePositionPatient", "PixelSpacing", "SliceThickness", "ImageType",
        "ScanningSequence", "SequenceVariant", "ScanOptions", "MRAcquisitionType",
        "RepetitionTime", "EchoTime", "EchoTrainLength", "SamplesPerPixel",
        "PhotometricInterpretation", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
        "PixelRepresentation",
    }  # fmt: skip
    assert keywords <= allowed, keywords - allowed
    assert "PixelData" not in headers[0]  # the headers handed to the leak scan are light


def test_an_unreadable_source_is_named(tmp_path: Path):
    make_series(tmp_path / "src", 2)
    info = read_series(tmp_path / "src")
    info.files[1].write_bytes(b"garbage")
    with pytest.raises(StudyError, match=f"^{info.files[1]}: cannot read DICOM file"):
        write_blinded_series(info.files, tmp_path / "out", IDENTITY)


def test_the_series_encoder_writes_what_pydicom_writes(tmp_path: Path):
    import io

    from studies.blinded_dicom import SeriesEncoder, blinded_dataset, series_template

    make_series(tmp_path / "src", 2, 6, 5)
    sources = [pydicom.dcmread(p) for p in read_series(tmp_path / "src").files]
    template = series_template(IDENTITY, series_uid=str(new_uid()), shape=(6, 5), window=(7, 9))
    encoder = SeriesEncoder(template)  # one encoder for the series: its file meta is reused
    for index, source in enumerate(sources, start=1):
        pixels = np.arange(30, dtype=np.uint16).reshape(6, 5) * index
        ds = blinded_dataset(source, template, frame_salt="x", instance_number=index, pixels=pixels)
        if index == 2:
            del ds.ImagePositionPatient  # a slice without a position: still the same bytes
        expected = io.BytesIO()
        pydicom.dcmwrite(expected, ds, enforce_file_format=True)
        assert encoder.encode(ds) == expected.getvalue()
    with pytest.raises(ValueError, match="per-slice"):
        SeriesEncoder(ds)
