"""DICOM decoding, rescale, automatic windows and the 8-bit mapping (no Qt)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from reader_app.errors import ImageDecodeError
from reader_app.images import (
    WindowLevel,
    auto_window,
    load_case,
    read_series,
    to_uint8,
    window_presets,
)
from tests.reader_app.conftest import phantom, write_series


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


def test_auto_window_is_shared_by_the_pair_and_uses_percentiles():
    dark = np.full((2, 10, 10), 100.0, dtype=np.float32)
    bright = np.linspace(0, 1000, 200, dtype=np.float32).reshape(2, 10, 10)
    window = auto_window([dark, bright])
    values = np.concatenate([dark.ravel(), bright.ravel()])
    lo, hi = np.percentile(values, [1, 99])
    assert window.low == pytest.approx(lo)
    assert window.high == pytest.approx(hi)
    presets = window_presets([dark, bright])
    assert presets["auto"] == window
    assert presets["wide"].width > presets["auto"].width > presets["contrast"].width


def test_to_uint8_maps_the_window_to_black_and_white():
    image = np.array([[0.0, 50.0, 100.0, 200.0]], dtype=np.float32)
    out = to_uint8(image, WindowLevel.from_range(50.0, 150.0))
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 0, 127, 255]]
    assert out.flags["C_CONTIGUOUS"]


def test_load_case_decodes_every_side(tmp_path):
    left = write_series(tmp_path / "l", 3, 16, seed=1, patient="X^Y")
    right = write_series(tmp_path / "r", 3, 16, seed=2, patient="X^Y")
    images = load_case("a1", [left, right])
    assert len(images.volumes) == 2
    assert images.window == auto_window(list(images.volumes))
    assert images.nbytes == 2 * 3 * 16 * 16 * 4
