"""DICOM decoding, rescale, geometry, named window presets and the 8-bit mapping (no Qt)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from reader_app.errors import ImageDecodeError
from reader_app.images import (
    Geometry,
    WindowLevel,
    load_case,
    read_geometry,
    read_series,
    to_uint8,
    window_from_percentiles,
    window_presets,
)
from studies.api import SeriesImages, SideImages
from studies.protocol import WindowPreset
from tests.reader_app.conftest import phantom, write_series


def side(*series: tuple[str, list]) -> SideImages:
    """A side showing ``(label, files)`` series."""
    return SideImages(tuple(SeriesImages(f"s-{label}", tuple(f), label) for label, f in series))


def test_read_series_applies_rescale(tmp_path):
    files = write_series(tmp_path / "s", 3, 16, seed=1, patient="X^Y")
    volume = read_series(files)
    raw = phantom(3, 16, 16, 1)
    assert volume.dtype == np.float32
    assert volume.shape == (3, 16, 16)
    np.testing.assert_allclose(volume, raw.astype(np.float32) * 2 - 10)
    stored = pydicom.dcmread(files[0])
    assert float(stored.RescaleSlope) == 2.0


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda p: p.write_bytes(b"garbage, not DICOM at all"), "not DICOM"),
        (lambda p: p.unlink(), "missing"),
    ],
)
def test_unreadable_file_is_a_clear_error_without_the_path(tmp_path, damage, reason):
    files = write_series(tmp_path / "secret_series_dir", 3, 16, seed=1, patient="X^Y")
    damage(files[1])
    with pytest.raises(ImageDecodeError) as info:
        read_series(files)
    assert reason in str(info.value)
    assert "secret_series_dir" not in str(info.value)  # shown to the reader: no file names
    assert str(files[1]) in info.value.detail  # logged: the file named


def test_slices_of_different_sizes_are_refused(tmp_path):
    a = write_series(tmp_path / "a", 2, 16, seed=1, patient="X^Y")
    b = write_series(tmp_path / "b", 1, 8, seed=2, patient="X^Y")
    with pytest.raises(ImageDecodeError, match="different size"):
        read_series([*a, *b])


def test_presets_are_shared_by_the_pair_and_use_percentiles():
    dark = np.full((2, 10, 10), 100.0, dtype=np.float32)
    bright = np.linspace(0, 1000, 200, dtype=np.float32).reshape(2, 10, 10)
    presets = window_presets([dark, bright])
    values = np.concatenate([dark.ravel(), bright.ravel()])
    lo, hi = np.percentile(values, [1, 99])
    assert list(presets) == ["Auto", "Contrast", "Wide"]
    assert presets["Auto"].low == pytest.approx(lo)
    assert presets["Auto"].high == pytest.approx(hi)
    assert presets["Auto"] == window_from_percentiles([dark, bright], 1, 99)
    assert presets["Wide"].width > presets["Auto"].width > presets["Contrast"].width
    named = window_presets([bright], [WindowPreset(name="Cartilage", low=10, high=60)])
    assert list(named) == ["Cartilage"]
    assert named["Cartilage"] == window_from_percentiles([bright], 10, 60)


def test_to_uint8_maps_the_window_to_black_and_white():
    image = np.array([[0.0, 50.0, 100.0, 200.0]], dtype=np.float32)
    out = to_uint8(image, WindowLevel.from_range(50.0, 150.0))
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 0, 127, 255]]
    assert out.flags["C_CONTIGUOUS"]


def test_load_case_decodes_every_series_of_every_side(tmp_path):
    files = {
        (arm, label): write_series(tmp_path / arm / label, n, 16, seed=n + len(arm), patient="X")
        for arm in ("l", "rr")
        for label, n in (("cor", 3), ("sag", 5))
    }
    sides = [side(("cor", files[(a, "cor")]), ("sag", files[(a, "sag")])) for a in ("l", "rr")]
    images = load_case("a1", sides)
    assert images.labels == ("cor", "sag")
    cor, sag = images.series
    assert [v.shape for v in cor.volumes] == [(3, 16, 16), (3, 16, 16)]
    assert sag.n_slices == 5 and len(sag.volumes) == 2
    assert cor.window == cor.presets["Auto"] == window_presets(list(cor.volumes))["Auto"]
    assert cor.thumbnail.dtype == np.uint8 and cor.thumbnail.shape == (16, 16)
    assert images.nbytes == sum(v.nbytes for s in images.series for v in s.volumes) + 2 * 256
    assert images.get("sag") is sag
    with pytest.raises(ImageDecodeError, match="do not show the same series"):
        load_case("a2", [sides[0], side(("cor", files[("rr", "cor")]))])


def test_geometry_comes_from_pixel_spacing_and_orientation(tmp_path):
    files = write_series(tmp_path / "s", 2, 16, seed=1, patient="X")
    ds = pydicom.dcmread(files[0])
    ds.PixelSpacing = [0.6, 0.3]  # rows 0.6 mm apart, columns 0.3 mm
    ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]  # sagittal
    ds.save_as(files[0])
    assert read_geometry(files[0]) == Geometry(0.6, 0.3, (0.0, 1.0, 0.0), (0.0, 0.0, -1.0))
    for keyword in ("PixelSpacing", "ImageOrientationPatient"):
        delattr(ds, keyword)
    ds.save_as(files[1])
    assert read_geometry(files[1]) == Geometry()  # square pixels, no orientation letters
