"""Training and held-out families of the demo model: varied, and kept apart."""

from __future__ import annotations

import numpy as np
import pytest

from recon_backend.training import families


def test_training_slices_vary_coils_matrix_scale_and_layout() -> None:
    rng = np.random.default_rng(0)
    slices = [families.training_slice(rng, max_size=64) for _ in range(40)]
    coils = {s.kspace.shape[1] for s in slices}
    shapes = {s.kspace.shape[2:] for s in slices}
    peaks = [float(np.abs(s.kspace).max()) for s in slices]
    assert min(coils) >= 4 and max(coils) <= 32 and len(coils) >= 8
    assert len(shapes) >= 10
    assert max(peaks) / min(peaks) > 1e4  # random intensity scale
    assert any(s.padding != (0, s.kspace.shape[-1]) for s in slices)  # zero-padded columns
    assert any(s.kspace.shape[2] == s.image_size[0] for s in slices)  # no oversampling
    assert any(s.kspace.shape[2] == 2 * s.image_size[0] for s in slices)
    for s in slices:
        left, right = s.padding
        assert not s.kspace[..., :left].any() and not s.kspace[..., right:].any()
        assert np.isfinite(s.kspace).all()


def test_training_never_reads_the_held_out_images(monkeypatch: pytest.MonkeyPatch) -> None:
    real = families.pydicom_mr_image

    def guarded(name: str) -> np.ndarray | None:
        assert name != families.HELDOUT_MR_FILE, "training touched the held-out image"
        return real(name)

    monkeypatch.setattr(families, "pydicom_mr_image", guarded)
    import skimage.data

    monkeypatch.setattr(skimage.data, "shepp_logan_phantom", lambda: pytest.fail("phantom"))
    rng = np.random.default_rng(1)
    for _ in range(30):
        families.training_slice(rng, max_size=64)


@pytest.mark.parametrize("name", list(families.HELDOUT_FAMILIES))
def test_held_out_families_are_reproducible(name: str) -> None:
    _, make = families.HELDOUT_FAMILIES[name]
    a = make(np.random.default_rng(5), 0, 2)
    b = make(np.random.default_rng(5), 0, 2)
    if a is None:
        pytest.skip("pydicom-data is not installed (pip install pydicom-data)")
    assert b is not None
    np.testing.assert_array_equal(a.kspace, b.kspace)
    assert a.kspace.shape[0] == 2 and np.isfinite(a.kspace).all()


def test_pydicom_images_come_from_the_installed_package_only() -> None:
    image = families.pydicom_mr_image(families.HELDOUT_MR_FILE)
    if image is None:
        pytest.skip("pydicom-data is not installed (pip install pydicom-data)")
    assert image.shape == (1024, 1024) and image.min() >= 0 and image.max() == 1
    assert families.pydicom_mr_image("no-such-file.dcm") is None
