"""Image-quality metrics with fastMRI 0.3.0's definitions (``fastmri.evaluate``).

Each metric compares a whole volume ``(slices, rows, columns)``: ``data_range`` is the maximum
of the target volume, SSIM is scikit-image's (7x7 window) averaged over slices. The sums behind
NMSE and PSNR are accumulated slice by slice in float64 (the same numbers as fastMRI's
whole-volume expressions to float64 rounding), so no volume-sized temporary is made and memory
does not grow with the number of slices.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity


def _squared_error(gt: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """``sum (gt - pred)^2`` and ``sum gt^2`` in float64, one slice at a time."""
    error = signal = 0.0
    for g, p in zip(
        gt.reshape(-1, *gt.shape[-2:]), pred.reshape(-1, *pred.shape[-2:]), strict=True
    ):
        g64 = g.astype(np.float64)
        diff = g64 - p
        error += float(np.vdot(diff, diff).real)
        signal += float(np.vdot(g64, g64).real)
    return error, signal


def nmse(gt: np.ndarray, pred: np.ndarray) -> float:
    """Normalised mean squared error ``||gt - pred||^2 / ||gt||^2``."""
    if gt.shape != pred.shape:
        raise ValueError(f"nmse: prediction shape {pred.shape} differs from {gt.shape}")
    error, signal = _squared_error(gt, pred)
    return error / signal


def psnr(gt: np.ndarray, pred: np.ndarray, maxval: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB with ``data_range`` = ``maxval`` (default ``gt.max()``).

    scikit-image's definition (``10 log10(data_range^2 / MSE)``), which fastMRI uses.
    """
    if gt.shape != pred.shape:
        raise ValueError(f"psnr: prediction shape {pred.shape} differs from {gt.shape}")
    data_range = float(gt.max() if maxval is None else maxval)
    error, _ = _squared_error(gt, pred)
    mse = error / gt.size
    with np.errstate(divide="ignore"):  # identical images: infinite PSNR, no warning
        return float(10 * np.log10(data_range**2 / mse)) if mse > 0 else float("inf")


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
