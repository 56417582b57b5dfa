"""Image-quality metrics with fastMRI 0.3.0's definitions (``fastmri.evaluate``).

Each metric compares a whole volume ``(slices, rows, columns)``: ``data_range`` is the maximum
of the target volume, SSIM is scikit-image's (7x7 window) averaged over slices.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def nmse(gt: np.ndarray, pred: np.ndarray) -> float:
    """Normalised mean squared error ``||gt - pred||^2 / ||gt||^2``."""
    return float(np.linalg.norm(gt - pred) ** 2 / np.linalg.norm(gt) ** 2)


def psnr(gt: np.ndarray, pred: np.ndarray, maxval: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB with ``data_range`` = ``maxval`` (default ``gt.max()``)."""
    data_range = gt.max() if maxval is None else maxval
    with np.errstate(divide="ignore"):  # identical images: infinite PSNR, no warning
        return float(peak_signal_noise_ratio(gt, pred, data_range=data_range))


def ssim(gt: np.ndarray, pred: np.ndarray, maxval: float | None = None) -> float:
    """Structural similarity averaged over the slices of a ``(slices, rows, columns)`` volume."""
    if gt.ndim != 3:
        raise ValueError(f"ssim: ground truth has {gt.ndim} dimensions, expected 3")
    if pred.shape != gt.shape:
        raise ValueError(f"ssim: prediction shape {pred.shape} differs from {gt.shape}")
    data_range = gt.max() if maxval is None else maxval
    total = sum(
        structural_similarity(gt[i], pred[i], data_range=data_range) for i in range(gt.shape[0])
    )
    return float(total / gt.shape[0])


def volume_metrics(gt: np.ndarray, pred: np.ndarray) -> dict[str, float | None]:
    """``nmse``, ``psnr`` and ``ssim`` of a volume; values that are not finite become ``None``.

    A perfect prediction has an infinite PSNR, which JSON cannot hold.
    """
    values = {"nmse": nmse(gt, pred), "psnr": psnr(gt, pred), "ssim": ssim(gt, pred)}
    return {key: (value if np.isfinite(value) else None) for key, value in values.items()}
