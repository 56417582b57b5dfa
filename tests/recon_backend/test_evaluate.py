"""NMSE, PSNR and SSIM agree with fastmri.evaluate to 1e-6."""

from __future__ import annotations

import numpy as np
import pytest
from fastmri import evaluate as fm_eval

from recon_backend.evaluate import nmse, psnr, ssim, volume_metrics


def _pair(seed: int, slices: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gt = (rng.random((slices, 24, 20)) ** 2).astype(np.float32) * rng.uniform(1e-5, 10)
    pred = (gt + rng.normal(0, gt.std() * rng.uniform(0.01, 0.5), gt.shape)).astype(np.float32)
    return gt, pred


@pytest.mark.parametrize("seed", range(4))
def test_metrics_match_fastmri(seed: int) -> None:
    gt, pred = _pair(seed)
    assert nmse(gt, pred) == pytest.approx(float(fm_eval.nmse(gt, pred)), rel=1e-6, abs=1e-6)
    assert psnr(gt, pred) == pytest.approx(float(fm_eval.psnr(gt, pred)), rel=1e-6, abs=1e-6)
    assert ssim(gt, pred) == pytest.approx(float(fm_eval.ssim(gt, pred)[0]), rel=1e-6, abs=1e-6)


def test_data_range_is_the_volume_max() -> None:
    gt, pred = _pair(9)
    assert ssim(gt, pred) == pytest.approx(ssim(gt, pred, maxval=float(gt.max())))
    assert ssim(gt, pred) != pytest.approx(ssim(gt, pred, maxval=float(gt.max()) * 3))


def test_perfect_prediction_has_no_finite_psnr() -> None:
    gt, _ = _pair(1)
    assert volume_metrics(gt, gt.copy()) == {"nmse": 0.0, "psnr": None, "ssim": 1.0}


def test_ssim_checks_shapes() -> None:
    gt, pred = _pair(2)
    with pytest.raises(ValueError, match="3"):
        ssim(gt[0], pred[0])
    with pytest.raises(ValueError, match="shape"):
        ssim(gt, pred[:2])
