"""Simulated k-space: shapes, seeding, physics, and the demo / held-out / training split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon_backend import simulate
from recon_backend.fftc import ifft2c


@pytest.fixture(scope="module")
def volumes() -> dict[str, np.ndarray]:
    return simulate.template_volumes()


def marked(volumes: dict[str, np.ndarray], z_ranges) -> dict[str, np.ndarray]:
    """Copies of the template volumes with the voxels of ``z_ranges`` set to NaN."""
    out = {}
    for name, data in volumes.items():
        copy = data.copy()
        for zs in z_ranges:
            copy[:, :, zs.start : zs.stop] = np.nan
        out[name] = copy
    return out


def test_splits_do_not_overlap():
    demo, held = set(simulate.DEMO_Z), set(simulate.HELDOUT_Z)
    training = set().union(*(set(r) for r in simulate.TRAINING_Z))
    assert not demo & held and not demo & training and not held & training
    # a gap of several slices between any two sets (neighbouring slices look alike)
    for a, b in [(demo, held), (demo, training), (held, training)]:
        assert min(abs(x - y) for x in a for y in b) > 5


def test_training_volumes_never_touch_demo_or_heldout_voxels(volumes):
    hidden = marked(volumes, [simulate.DEMO_Z, simulate.HELDOUT_Z])
    rng = np.random.default_rng(0)
    for index in range(25):  # all orientations, both slabs, all augmentations
        images = simulate.training_volume(index, rng, n_slices=2, size=48, volumes=hidden)
        assert np.isfinite(images).all(), index


def test_the_marking_would_catch_a_leak(volumes):
    # the same check fails when the training slabs themselves are marked
    hidden = marked(volumes, simulate.TRAINING_Z)
    rng = np.random.default_rng(0)
    images = [simulate.training_volume(i, rng, 1, 48, volumes=hidden) for i in range(3)]
    assert all(np.isnan(im).any() for im in images)


def test_demo_and_heldout_use_only_their_own_slabs(volumes):
    rng = np.random.default_rng(1)
    no_demo = marked(volumes, [*simulate.TRAINING_Z, simulate.HELDOUT_Z])
    no_held = marked(volumes, [*simulate.TRAINING_Z, simulate.DEMO_Z])
    for index in range(4):
        assert np.isfinite(simulate.demo_volume(index, rng, 12, 48, volumes=no_demo)).all()
        assert np.isfinite(simulate.heldout_volume(index, rng, 8, 48, volumes=no_held)).all()
    with pytest.raises(ValueError, match="n_slices"):
        simulate.demo_volume(0, rng, len(simulate.DEMO_Z) + 1)


def test_volumes_are_seeded_and_shaped():
    a = simulate.demo_volume(1, np.random.default_rng(5), n_slices=3, size=64)
    b = simulate.demo_volume(1, np.random.default_rng(5), n_slices=3, size=64)
    assert a.shape == (3, 64, 64) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    t1 = simulate.training_volume(0, np.random.default_rng(2), n_slices=2, size=40)
    t2 = simulate.training_volume(0, np.random.default_rng(2), n_slices=2, size=40)
    t3 = simulate.training_volume(0, np.random.default_rng(3), n_slices=2, size=40)
    np.testing.assert_array_equal(t1, t2)
    assert not np.array_equal(t1, t3)
    assert t1.shape == (2, 40, 40) and 0.99 <= t1.max() <= 1.0 and t1.min() >= 0
    assert 0.5 < a.max() < 1.3  # the demo images keep the template's intensities


def test_kspace_layout_noise_and_seed():
    rng = np.random.default_rng(0)
    images = simulate.demo_volume(0, rng, n_slices=2, size=32)
    k1 = simulate.simulate_kspace(images, 4, np.random.default_rng(9), noise_std=0.0)
    k2 = simulate.simulate_kspace(images, 4, np.random.default_rng(9), noise_std=0.0)
    assert k1.shape == (2, 4, 64, 32) and k1.dtype == np.complex64
    np.testing.assert_array_equal(k1, k2)
    coil_images = ifft2c(torch.from_numpy(k1))
    rss = coil_images.abs().square().sum(1).sqrt().numpy()
    # read-out oversampling: the object sits in the central half of the rows
    assert rss[:, :16].max() < 1e-5 and rss[:, 48:].max() < 1e-5
    centre = rss[:, 16:48]
    # magnitude = image x coil RSS (phase drops out): zero exactly where the image is zero
    assert centre[images == 0].max() < 1e-5 and centre[images > 0.2].min() > 1e-3

    empty = np.zeros((1, 32, 32), dtype=np.float32)
    noise = simulate.simulate_kspace(empty, 8, np.random.default_rng(1), noise_std=0.01)
    assert abs(noise.real.std() - 0.01) < 0.001 and abs(noise.imag.std() - 0.01) < 0.001
    with pytest.raises(ValueError, match=r"\(slices, H, W\)"):
        simulate.simulate_kspace(empty[0], 4, rng)


def test_coil_maps_are_smooth_and_normalised():
    maps = simulate.coil_sensitivities(8, (64, 32), np.random.default_rng(0))
    assert maps.shape == (8, 64, 32) and maps.dtype == np.complex64
    rss = np.sqrt((np.abs(maps) ** 2).sum(0))
    assert rss.max() == pytest.approx(1.0, rel=1e-5) and rss.min() > 0.05
    # smooth: neighbouring pixels differ little compared with the map's range
    assert np.abs(np.diff(maps, axis=-1)).max() < 0.2 * np.abs(maps).max()
    # each coil is strongest somewhere different
    peaks = {np.unravel_index(np.abs(m).argmax(), m.shape) for m in maps}
    assert len(peaks) == 8
    phase = simulate.smooth_phase((64, 32), np.random.default_rng(0))
    assert phase.shape == (64, 32) and np.abs(np.diff(phase, axis=0)).max() < 0.5
