"""DICOM series: read back with pydicom; geometry, UIDs, grey levels, nothing that unblinds."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_voi_lut
from pydicom.uid import MRImageStorage, SecondaryCaptureImageStorage

from recon_backend.data import Geometry, make_geometry
from recon_backend.errors import ReconError
from recon_backend.export import PROTOCOL_NAME, SERIES_DESCRIPTION, write_series
from studies.dicom_series import burned_in_reason
from tests.dicom_tools import dciodvfy_errors, dcm2pnm_grey


def _images(seed: int = 0, shape: tuple[int, int, int] = (4, 20, 16)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random(shape) ** 3 * 3e-4).astype(np.float32)


def _read(folder: Path) -> list[pydicom.Dataset]:
    files = sorted(folder.iterdir())
    return [pydicom.dcmread(f) for f in files]


def _values(value: object) -> list[str]:
    """A DICOM value as a list (a single value comes back from pydicom as a plain string)."""
    return [value] if isinstance(value, str) else [str(v) for v in value]  # type: ignore[attr-defined]


def _known(geometry: Geometry, n_slices: int, step: float = 3.5) -> Geometry:
    """``geometry`` with an axial orientation and slice centres ``step`` mm apart."""
    return replace(
        geometry,
        read_dir=(0.0, 1.0, 0.0),
        phase_dir=(1.0, 0.0, 0.0),
        slice_centres_mm=tuple((0.0, 0.0, step * i) for i in range(n_slices)),
    )


def test_series_round_trip_geometry_and_pixels(tmp_path: Path) -> None:
    images = _images()
    geometry = _known(
        make_geometry(
            (4, 8, 40, 16),
            (20, 16),
            pixel_spacing_mm=(0.5, 0.625),
            slice_thickness_mm=3.0,
            sequence={"TR": 2000.0, "TE": 25.0},
        ),
        4,
    )
    info = write_series(
        images, geometry, tmp_path / "s", study_seed="abc", patient_id="anon-1", series_number=7
    )
    datasets = _read(info.series_dir)
    assert [f.name for f in sorted(info.series_dir.iterdir())] == [p.name for p in info.files]
    assert len(datasets) == 4
    for index, ds in enumerate(datasets):
        assert ds.SOPClassUID == MRImageStorage
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.Modality == "MR" and ds.SeriesNumber == 7
        assert (ds.Rows, ds.Columns) == (20, 16)
        assert [float(v) for v in ds.PixelSpacing] == [0.5, 0.625]
        assert float(ds.SliceThickness) == 3.0
        # slices 3.5 mm apart, 3 mm thick: the spacing is the distance, not the thickness
        assert float(ds.SpacingBetweenSlices) == 3.5
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert float(ds.RepetitionTime) == 2000.0 and float(ds.EchoTime) == 25.0
        assert "InversionTime" not in ds and _values(ds.ScanningSequence) == ["RM"]
        assert ds.InstanceNumber == index + 1
        # 12-bit integers, stored value = displayed value (no rescale)
        assert (ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (12, 11, 0)
        assert "RescaleSlope" not in ds and "RescaleIntercept" not in ds
        restored = ds.pixel_array / info.intensity_scale
        assert np.abs(restored - images[index]).max() <= 0.5 / info.intensity_scale * 1.0001
        assert 1 <= float(ds.WindowWidth) <= 4095 and float(ds.WindowCenter) >= 0.5
        assert ds.Laterality == ""
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in datasets])
    np.testing.assert_allclose(np.diff(positions, axis=0), [[0, 0, 3.5]] * 3)
    # top-left pixel sits half the field of view from the centre of each slice
    np.testing.assert_allclose(positions[0][:2], [-0.625 * 8, -0.5 * 10])
    locations = [float(ds.SliceLocation) for ds in datasets]
    np.testing.assert_allclose(np.abs(np.diff(locations)), 3.5)
    assert max(int(ds.pixel_array.max()) for ds in datasets) == 4095
    assert info.spacing_between_slices_mm == pytest.approx(3.5)


def test_unknown_orientation_is_not_invented(tmp_path: Path) -> None:
    geometry = make_geometry((3, 8, 40, 16), (20, 16), pixel_spacing_mm=(0.5, 0.5))
    assert not geometry.orientation_known
    info = write_series(
        _images(1, (3, 20, 16)), geometry, tmp_path / "s", study_seed="x", patient_id="p"
    )
    assert info.sop_class_uid == SecondaryCaptureImageStorage
    for ds in _read(info.series_dir):
        assert ds.SOPClassUID == SecondaryCaptureImageStorage and ds.Modality == "MR"
        for keyword in (
            "ImageOrientationPatient",
            "ImagePositionPatient",
            "FrameOfReferenceUID",
            "SliceLocation",
            "SpacingBetweenSlices",
        ):
            assert keyword not in ds, keyword
        assert [float(v) for v in ds.PixelSpacing] == [0.5, 0.5]
        assert ds.ConversionType == "WSD"
        # we draw no text into the pixels, and say so: study create accepts the series
        assert ds.BurnedInAnnotation == "NO" and burned_in_reason(ds) == ""


def test_uneven_slice_positions_have_no_spacing_between_slices(tmp_path: Path) -> None:
    geometry = replace(
        _known(make_geometry((3, 1, 40, 16), (20, 16)), 3),
        slice_centres_mm=((0.0, 0.0, 0.0), (0.0, 0.0, 3.0), (0.0, 0.0, 7.0)),
    )
    info = write_series(
        _images(2, (3, 20, 16)), geometry, tmp_path / "s", study_seed="x", patient_id="p"
    )
    assert info.spacing_between_slices_mm is None
    assert all("SpacingBetweenSlices" not in ds for ds in _read(info.series_dir))


@pytest.mark.parametrize(
    ("sequence_type", "ti", "expected"),
    [
        (None, None, ["RM"]),
        ("TurboSpinEcho", None, ["SE"]),
        ("Flash", None, ["GR"]),
        ("TurboSpinEcho", 2500.0, ["SE", "IR"]),
        (None, 100.0, ["IR"]),
        (None, 0.0, ["RM"]),
    ],
)
def test_scanning_sequence_and_inversion_time(
    tmp_path: Path, sequence_type: str | None, ti: float | None, expected: list[str]
) -> None:
    sequence = {"TR": 3000.0, "TE": 30.0, **({"TI": ti} if ti is not None else {})}
    geometry = replace(
        _known(make_geometry((1, 1, 40, 16), (20, 16), sequence=sequence), 1),
        sequence_type=sequence_type,
    )
    info = write_series(
        _images(3, (1, 20, 16)), geometry, tmp_path / "s", study_seed="x", patient_id="p"
    )
    (ds,) = _read(info.series_dir)
    assert _values(ds.ScanningSequence) == expected
    assert ("InversionTime" in ds) == ("IR" in expected)
    if "IR" in expected:
        assert float(ds.InversionTime) == ti


@pytest.mark.parametrize("scale", [3e-9, 1e-4, 1.0, 5e4])
def test_any_intensity_scale_gives_a_full_integer_range(tmp_path: Path, scale: float) -> None:
    """fastMRI's k-space gives images of ~1e-4; the stored range is 0-4095 whatever the scale."""
    images = _images(4) / 3e-4 * scale
    info = write_series(images, _known(make_geometry((4, 1, 40, 16), (20, 16)), 4),
                        tmp_path / "s", study_seed="x", patient_id="p")  # fmt: skip
    datasets = _read(info.series_dir)
    stored = np.stack([ds.pixel_array for ds in datasets])
    assert stored.max() == 4095 and len(np.unique(stored)) > 500
    for ds in datasets:
        assert float(ds.WindowWidth) >= 1
        shown = apply_voi_lut(ds.pixel_array, ds)
        assert np.isfinite(shown).all() and shown.max() > shown.min()


def test_series_pass_dciodvfy_without_errors(tmp_path: Path) -> None:
    base = make_geometry((3, 8, 40, 16), (20, 16), sequence={"TR": 2000.0, "TE": 20.0, "TI": 150.0})
    for name, geometry in (("mr", _known(base, 3)), ("sc", base)):
        info = write_series(
            _images(5, (3, 20, 16)) * 1e-3, geometry, tmp_path / name, study_seed="x",
            patient_id="p", series_number=2,
        )  # fmt: skip
        for path in info.files:
            errors = dciodvfy_errors(path)
            assert errors == [], (name, errors)


def test_dcm2pnm_renders_the_full_grey_range(tmp_path: Path) -> None:
    ramp = np.linspace(0.0, 1.0, 20 * 16, dtype=np.float32).reshape(1, 20, 16) * 2e-5
    images = np.concatenate([ramp, ramp * 0.5])
    for name, geometry in (
        ("mr", _known(make_geometry((2, 1, 40, 16), (20, 16)), 2)),
        ("sc", make_geometry((2, 1, 40, 16), (20, 16))),
    ):
        info = write_series(images, geometry, tmp_path / name, study_seed="x", patient_id="p")
        plain = dcm2pnm_grey(info.files[0], tmp_path / f"{name}.pgm")
        assert plain.min() == 0 and plain.max() == 255
        assert len(np.unique(plain)) > 200  # a ramp: (nearly) every grey level, not 2
        windowed = dcm2pnm_grey(info.files[0], tmp_path / f"{name}_w.pgm", "+Wi", "1")
        assert windowed.min() == 0 and windowed.max() == 255 and len(np.unique(windowed)) > 200


def test_uids_fresh_per_series_and_shared_per_input(tmp_path: Path) -> None:
    geometry = make_geometry((4, 1, 40, 16), (20, 16))
    first = write_series(_images(1), geometry, tmp_path / "a", study_seed="x", patient_id="p")
    second = write_series(_images(2), geometry, tmp_path / "b", study_seed="x", patient_id="p")
    other = write_series(_images(3), geometry, tmp_path / "c", study_seed="y", patient_id="p")
    a, b = _read(first.series_dir), _read(second.series_dir)
    assert len({ds.SeriesInstanceUID for ds in a}) == 1
    assert a[0].SeriesInstanceUID == first.series_instance_uid != second.series_instance_uid
    sops = {ds.SOPInstanceUID for ds in a + b}
    assert len(sops) == 8
    assert first.study_instance_uid == second.study_instance_uid != other.study_instance_uid
    for ds in a:
        for uid in (ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID):
            assert uid.is_valid


def test_nothing_names_method_model_or_input(tmp_path: Path) -> None:
    secrets = ["varnet", "file_knee_001", "demo", "cg-sense", "zero-filled", "unet", "recon"]
    geometry = replace(make_geometry((2, 1, 40, 16), (20, 16)), sequence={"TR": 1.0})
    info = write_series(
        _images(4, (2, 20, 16)),
        geometry,
        tmp_path / "file_knee_001_varnet",
        study_seed="file_knee_001.h5",
        patient_id="anon-0",
    )
    for ds in _read(info.series_dir):
        assert ds.SeriesDescription == SERIES_DESCRIPTION and ds.ProtocolName == PROTOCOL_NAME
        for element in ds.iterall():
            assert not element.tag.is_private
            if element.tag == (0x7FE0, 0x0010):
                continue
            text = str(element.value).lower()
            for secret in secrets:
                assert secret not in text, (element.keyword, text)
        for element in ds.file_meta:
            assert not any(s in str(element.value).lower() for s in secrets)
    assert {p.name for p in info.series_dir.iterdir()} == {"IM0001.dcm", "IM0002.dcm"}


def test_existing_folder_is_refused_and_untouched(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(ReconError, match="exists"):
        write_series(
            _images(), make_geometry((4, 1, 40, 16), (20, 16)), folder, study_seed="", patient_id=""
        )
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]


def test_non_finite_images_are_refused_and_nothing_is_left(tmp_path: Path) -> None:
    images = _images()
    images[1, 2, 3] = np.inf
    with pytest.raises(ReconError, match="finite"):
        write_series(
            images,
            make_geometry((4, 1, 40, 16), (20, 16)),
            tmp_path / "s",
            study_seed="",
            patient_id="",
        )
    assert list(tmp_path.iterdir()) == []


def test_ismrmrd_positions_and_orientation(tmp_path: Path) -> None:
    geometry = replace(
        make_geometry((2, 1, 40, 16), (20, 16), pixel_spacing_mm=(1.0, 1.0)),
        read_dir=(0.0, 0.0, -1.0),
        phase_dir=(0.0, 1.0, 0.0),
        slice_centres_mm=((10.0, 0.0, 0.0), (14.0, 0.0, 0.0)),
    )
    info = write_series(
        _images(5, (2, 20, 16)), geometry, tmp_path / "s", study_seed="", patient_id=""
    )
    first, second = _read(info.series_dir)
    assert float(first.SpacingBetweenSlices) == 4.0
    assert [float(v) for v in first.ImageOrientationPatient] == [0, 1, 0, 0, 0, -1]
    np.testing.assert_allclose([float(v) for v in first.ImagePositionPatient], [10, -8, 10])
    np.testing.assert_allclose([float(v) for v in second.ImagePositionPatient], [14, -8, 10])
