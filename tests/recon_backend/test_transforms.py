"""Crops, RSS and normalisation agree with fastMRI 0.3.0's transforms."""

from __future__ import annotations

import fastmri
import numpy as np
import pytest
import torch
from fastmri.data import transforms as fm
from hypothesis import given, settings
from hypothesis import strategies as st

from recon_backend.transforms import (
    center_crop,
    complex_center_crop,
    fitting_crop,
    normalize_instance,
    normalize_slices,
    rss,
)


def _complex(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(
        (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    )


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(1, 24),
    width=st.integers(1, 24),
    data=st.data(),
)
def test_crops_take_fastmri_windows(height: int, width: int, data: st.DataObject) -> None:
    rows = data.draw(st.integers(1, height))
    cols = data.draw(st.integers(1, width))
    x = _complex((2, height, width), seed=height * 100 + width)
    ours = complex_center_crop(x, (rows, cols))
    theirs = torch.view_as_complex(
        fm.complex_center_crop(torch.view_as_real(x), (rows, cols)).contiguous()
    )
    assert torch.equal(ours, theirs)
    assert torch.equal(center_crop(x.real, (rows, cols)), fm.center_crop(x.real, (rows, cols)))


def test_crop_larger_than_image_is_refused() -> None:
    with pytest.raises(ValueError, match="columns"):
        center_crop(torch.zeros(4, 4), (2, 5))


def test_fitting_crop_shrinks_only_where_needed() -> None:
    assert fitting_crop((3, 640, 200), (320, 320)) == (320, 200)
    assert fitting_crop((640, 368), (320, 320)) == (320, 320)


def test_rss_matches_fastmri() -> None:
    x = _complex((4, 6, 5), seed=1)
    expected = fastmri.rss_complex(torch.view_as_real(x), dim=0)
    torch.testing.assert_close(rss(x, dim=0), expected, rtol=1e-6, atol=0)
    torch.testing.assert_close(rss(x.abs(), dim=0), fastmri.rss(x.abs(), dim=0), rtol=1e-6, atol=0)


def test_normalize_instance_matches_fastmri() -> None:
    x = torch.from_numpy(np.random.default_rng(2).random((8, 9)).astype(np.float32))
    ours = normalize_instance(x, eps=1e-11)
    image, mean, std = fm.normalize_instance(x, eps=1e-11)
    assert torch.equal(ours.image, image)
    assert torch.equal(ours.mean, mean) and torch.equal(ours.std, std)


def test_normalize_slices_is_fastmri_unet_input_per_slice() -> None:
    rng = np.random.default_rng(3)
    batch = torch.from_numpy((rng.random((3, 8, 9)) ** 8 * 50).astype(np.float32))
    ours = normalize_slices(batch)
    for index in range(3):
        image, mean, std = fm.normalize_instance(batch[index], eps=1e-11)
        torch.testing.assert_close(ours.image[index], image.clamp(-6, 6), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(ours.mean[index, 0, 0], mean)
        torch.testing.assert_close(ours.std[index, 0, 0], std)
    assert float(ours.image.max()) <= 6.0
