"""Reading a series folder: DICOM by content, slice order, geometry and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from studies.dicom_series import read_series
from studies.errors import StudyError
from tests.studies.conftest import make_series


def test_geometry_and_descriptors(tmp_path: Path):
    make_series(
        tmp_path / "s",
        5,
        12,
        10,
        pixel_spacing=(0.4, 0.6),
        slice_thickness=2.0,
        slice_gap=0.5,
        SeriesDescription="PD SAG",
    )
    info = read_series(tmp_path / "s")
    assert (info.rows, info.columns, info.n_slices) == (12, 10, 5)
    assert info.pixel_spacing == (0.4, 0.6)
    assert info.slice_thickness == 2.0
    assert info.slice_spacing == pytest.approx(2.5)
    assert info.modality == "MR"
    assert info.series_description == "PD SAG"
    assert info.manufacturer == "ExampleVendor"
    assert len(info.files) == 5 and info.folder == tmp_path / "s"


def test_sorted_by_position_along_the_normal_not_by_name(tmp_path: Path):
    # File names run opposite to the slice positions; no extension either.
    paths = make_series(tmp_path / "s", 4, file_name=lambda i: f"IM{9 - i}")
    info = read_series(tmp_path / "s")
    assert info.files == tuple(paths)  # make_series returns files in position order
    assert [p.name for p in info.files] == ["IM9", "IM8", "IM7", "IM6"]


def test_sorted_along_an_oblique_normal(tmp_path: Path):
    # Sagittal: rows along +y, columns along -z, so the normal (row x column) points along -x.
    # Positions step in x; z and the instance numbers disagree with the true order.
    folder = tmp_path / "s"
    for i, x in enumerate([6.0, -3.0, 0.0, 3.0]):
        make_series(
            folder,
            1,
            file_name=lambda _, i=i: f"f{i}.dcm",
            series_uid="1.2.3.4",
            ImageOrientationPatient=[0, 1, 0, 0, 0, -1],
            ImagePositionPatient=[x, 0.0, 50.0],
            InstanceNumber=i + 1,
        )
    info = read_series(folder)
    assert [p.name for p in info.files] == ["f0.dcm", "f3.dcm", "f2.dcm", "f1.dcm"]
    assert info.slice_spacing == pytest.approx(3.0)


def test_instance_number_fallback(tmp_path: Path):
    folder = tmp_path / "s"
    for i, number in enumerate([3, 1, 2]):
        make_series(
            folder,
            1,
            file_name=lambda _, i=i: f"f{i}",
            series_uid="1.2.3.4",
            InstanceNumber=number,
            ImagePositionPatient=None,
        )
    info = read_series(folder)
    assert [p.name for p in info.files] == ["f1", "f2", "f0"]
    assert info.slice_spacing is None


def test_hidden_files_are_skipped(tmp_path: Path):
    make_series(tmp_path / "s", 2)
    (tmp_path / "s" / ".DS_Store").write_bytes(b"\x00\x01junk")
    assert read_series(tmp_path / "s").n_slices == 2


def test_non_dicom_file_is_named(tmp_path: Path):
    make_series(tmp_path / "s", 2)
    bad = tmp_path / "s" / "notes.dcm"
    bad.write_text("not an image", encoding="utf-8")
    with pytest.raises(StudyError, match=f"{bad}: not a DICOM file"):
        read_series(tmp_path / "s")


def test_truncated_dicom_is_named(tmp_path: Path):
    paths = make_series(tmp_path / "s", 2)
    paths[1].write_bytes(paths[1].read_bytes()[:200])
    with pytest.raises(StudyError, match=str(paths[1])):
        read_series(tmp_path / "s")


def test_missing_and_empty_folders(tmp_path: Path):
    with pytest.raises(StudyError, match="series folder not found"):
        read_series(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StudyError, match="no DICOM files"):
        read_series(tmp_path / "empty")


def test_sub_folder_is_refused(tmp_path: Path):
    make_series(tmp_path / "s", 2)
    (tmp_path / "s" / "more").mkdir()
    with pytest.raises(StudyError, match="unexpected sub-folder"):
        read_series(tmp_path / "s")


def test_two_series_in_one_folder(tmp_path: Path):
    make_series(tmp_path / "s", 2, file_name=lambda i: f"a{i}")
    make_series(tmp_path / "s", 2, file_name=lambda i: f"b{i}")
    with pytest.raises(StudyError, match="one folder must hold one series"):
        read_series(tmp_path / "s")


def test_duplicate_position(tmp_path: Path):
    make_series(tmp_path / "s", 2, file_name=lambda i: f"a{i}", series_uid="1.2.3")
    make_series(tmp_path / "s", 1, file_name=lambda i: f"b{i}", series_uid="1.2.3")
    with pytest.raises(StudyError, match="same slice position"):
        read_series(tmp_path / "s")


def test_mixed_matrix(tmp_path: Path):
    make_series(tmp_path / "s", 1, 8, 8, file_name=lambda i: "a", series_uid="1.2.3")
    make_series(
        tmp_path / "s",
        1,
        8,
        9,
        file_name=lambda i: "b",
        series_uid="1.2.3",
        ImagePositionPatient=[0.0, 0.0, 9.0],
    )
    with pytest.raises(StudyError, match="matrix 8x9 differs from 8x8"):
        read_series(tmp_path / "s")


def test_dicom_without_image_is_refused(tmp_path: Path):
    make_series(tmp_path / "s", 1, Rows=None)
    with pytest.raises(StudyError, match="not a DICOM image \\(Rows missing\\)"):
        read_series(tmp_path / "s")
