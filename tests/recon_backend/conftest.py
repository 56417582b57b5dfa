"""Small simulated k-space volumes written as real fastMRI HDF5 files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.data import shepp_logan_phantom
from skimage.transform import resize

from recon_backend.data import write_fastmri_h5
from recon_backend.fftc import fft2c


def coil_maps(coils: int, height: int, width: int) -> np.ndarray:
    """Smooth complex coil sensitivities ``(coils, H, W)`` placed around the field of view."""
    yy, xx = np.mgrid[:height, :width] / np.array([height, width])[:, None, None]
    maps = []
    for c in range(coils):
        angle = 2 * np.pi * c / coils
        cy, cx = 0.5 + 0.5 * np.sin(angle), 0.5 + 0.5 * np.cos(angle)
        magnitude = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.4)
        maps.append(magnitude * np.exp(1j * (2 * xx + c)))
    return np.array(maps)


def simulate_kspace(
    n_slices: int = 3,
    coils: int = 4,
    height: int = 64,
    width: int = 48,
    seed: int = 0,
    noise: float = 0.002,
) -> np.ndarray:
    """Multi-coil k-space ``(slices, coils, H, W)`` complex64 of a Shepp-Logan phantom.

    The object fills the central half of the readout (2x oversampling, as fastMRI's data) and
    gets a smooth phase; complex Gaussian noise of standard deviation ``noise`` is added.
    """
    rng = np.random.default_rng(seed)
    phantom = resize(shepp_logan_phantom(), (height // 2, width - 8), anti_aliasing=True)
    maps = coil_maps(coils, height, width)
    yy = np.mgrid[:height, :width][0] / height
    images = []
    for index in range(n_slices):
        image = np.zeros((height, width))
        image[height // 4 : height // 4 + height // 2, 4 : width - 4] = phantom * (1 + 0.1 * index)
        images.append(maps * image * np.exp(1j * 0.5 * yy))
    kspace = fft2c(torch.from_numpy(np.array(images).astype(np.complex64))).numpy()
    shape = kspace.shape
    kspace = kspace + noise * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))
    return kspace.astype(np.complex64)


MakeFile = Callable[..., Path]


@pytest.fixture
def make_fastmri_file(tmp_path: Path) -> MakeFile:
    """Factory: ``make_fastmri_file(name="vol.h5", **simulate_kspace kwargs, **writer kwargs)``."""

    def make(name: str = "vol.h5", **kwargs: object) -> Path:
        sim_keys = {"n_slices", "coils", "height", "width", "seed", "noise"}
        sim = {k: v for k, v in kwargs.items() if k in sim_keys}
        writer = {k: v for k, v in kwargs.items() if k not in sim_keys}
        kspace = simulate_kspace(**sim)  # type: ignore[arg-type]
        return write_fastmri_h5(tmp_path / name, kspace, **writer)  # type: ignore[arg-type]

    return make


@pytest.fixture
def fastmri_file(make_fastmri_file: MakeFile) -> Path:
    """A 3-slice, 4-coil, 64x48 fully sampled fastMRI file (recon matrix 32x48)."""
    return make_fastmri_file("file_brain_sim.h5")
