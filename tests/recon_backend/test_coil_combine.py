"""Coil combination and calibration-region sensitivities."""

from __future__ import annotations

import fastmri
import numpy as np
import pytest
import torch

from recon_backend.coil_combine import (
    calibration_width,
    estimate_sensitivities,
    expand_coils,
    rss_combine,
    sensitivity_combine,
)
from recon_backend.data.subsample import create_mask_for_mask_type
from recon_backend.fftc import fft2c, ifft2c
from tests.recon_backend.conftest import coil_maps, simulate_kspace


def test_rss_combine_matches_fastmri_rss_complex() -> None:
    images = ifft2c(torch.from_numpy(simulate_kspace(n_slices=2, coils=4, height=16, width=12)))
    expected = torch.stack([fastmri.rss_complex(torch.view_as_real(im), dim=0) for im in images])
    torch.testing.assert_close(rss_combine(images), expected, rtol=1e-5, atol=1e-7)


def test_sensitivity_combine_is_the_adjoint_of_expansion() -> None:
    rng = np.random.default_rng(0)
    maps = torch.from_numpy(coil_maps(4, 16, 12).astype(np.complex64))[None]
    x = torch.from_numpy((rng.standard_normal((1, 16, 12)) + 1j).astype(np.complex64))
    y = torch.from_numpy((rng.standard_normal((1, 4, 16, 12)) * 1j + 2).astype(np.complex64))
    lhs = torch.vdot(expand_coils(x, maps).flatten(), y.flatten())
    rhs = torch.vdot(x.flatten(), sensitivity_combine(y, maps).flatten())
    torch.testing.assert_close(lhs, rhs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mask_type", ["random", "equispaced", "equispaced-fraction"])
def test_calibration_width_finds_the_fully_sampled_centre(mask_type: str) -> None:
    mask_func = create_mask_for_mask_type(mask_type, [0.08], [4])
    mask, num_low = mask_func((1, 64, 100, 2), None, (1, 2, 3))
    assert calibration_width(mask) >= num_low
    assert calibration_width(torch.zeros(10)) == 0


def test_estimated_sensitivities_recover_true_maps_where_there_is_signal() -> None:
    kspace = torch.from_numpy(simulate_kspace(n_slices=1, coils=4, height=64, width=48, noise=0))
    sens = estimate_sensitivities(kspace, num_low_frequencies=12)
    truth = torch.from_numpy(coil_maps(4, 64, 48).astype(np.complex64))
    truth = truth / rss_combine(truth[None])[0]
    image = rss_combine(ifft2c(kspace))[0]
    inside = image > 0.3 * image.max()
    torch.testing.assert_close(rss_combine(sens)[0][inside], torch.ones(int(inside.sum())))
    # the smooth object phase moves into the maps; compare magnitudes inside the object
    error = (sens[0].abs() - truth.abs())[:, inside].abs().mean()
    assert float(error) < 0.05
    assert fft2c(sens).shape == kspace.shape
