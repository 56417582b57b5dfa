"""DICOM series: read back with pydicom; geometry, UIDs, grey levels, nothing that unblinds."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import MRImageStorage

from recon_backend.data import make_geometry
from recon_backend.errors import ReconError
from recon_backend.export import PROTOCOL_NAME, SERIES_DESCRIPTION, write_series


def _images(seed: int = 0, shape: tuple[int, int, int] = (4, 20, 16)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random(shape) ** 3 * 3e-4).astype(np.float32)


def _read(folder: Path) -> list[pydicom.Dataset]:
    files = sorted(folder.iterdir())
    return [pydicom.dcmread(f) for f in files]


def test_series_round_trip_geometry_and_pixels(tmp_path: Path) -> None:
    images = _images()
    geometry = make_geometry(
        (4, 8, 40, 16),
        (20, 16),
        pixel_spacing_mm=(0.5, 0.625),
        slice_thickness_mm=3.0,
        sequence={"TR": 2000.0, "TE": 25.0},
    )
    info = write_series(images, geometry, tmp_path / "s", study_seed="abc", patient_id="anon-1")
    datasets = _read(info.series_dir)
    assert [f.name for f in sorted(info.series_dir.iterdir())] == [p.name for p in info.files]
    assert len(datasets) == 4
    for index, ds in enumerate(datasets):
        assert ds.SOPClassUID == MRImageStorage
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.Modality == "MR"
        assert (ds.Rows, ds.Columns) == (20, 16)
        assert [float(v) for v in ds.PixelSpacing] == [0.5, 0.625]
        assert float(ds.SliceThickness) == 3.0
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert float(ds.RepetitionTime) == 2000.0 and float(ds.EchoTime) == 25.0
        assert ds.InstanceNumber == index + 1
        # grey levels: 16-bit with one slope keep the image to 1/65535 of its maximum
        restored = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        assert np.abs(restored - images[index]).max() <= float(ds.RescaleSlope) / 2 * 1.0001
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in datasets])
    np.testing.assert_allclose(np.diff(positions, axis=0), [[0, 0, 3.0]] * 3)
    # top-left pixel sits half the field of view from the centre of each slice
    np.testing.assert_allclose(positions[0][:2], [-0.625 * 8, -0.5 * 10])
    locations = [float(ds.SliceLocation) for ds in datasets]
    np.testing.assert_allclose(np.diff(locations), 3.0)
    assert max(int(ds.pixel_array.max()) for ds in datasets) == 65535


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
    assert [float(v) for v in first.ImageOrientationPatient] == [0, 1, 0, 0, 0, -1]
    np.testing.assert_allclose([float(v) for v in first.ImagePositionPatient], [10, -8, 10])
    np.testing.assert_allclose([float(v) for v in second.ImagePositionPatient], [14, -8, 10])
