"""Coil combination: root sum of squares, sensitivity-weighted sums, calibration sensitivities."""

from __future__ import annotations

import torch

from recon_backend.fftc import ifft2c
from recon_backend.transforms import rss


def rss_combine(coil_images: torch.Tensor, coil_dim: int = 1) -> torch.Tensor:
    """Root-sum-of-squares magnitude of complex coil images (default layout ``(B, C, H, W)``)."""
    return rss(coil_images, dim=coil_dim)


def sensitivity_combine(
    coil_images: torch.Tensor, sensitivities: torch.Tensor, coil_dim: int = 1
) -> torch.Tensor:
    """Complex image ``sum_c conj(S_c) x_c`` (the SENSE adjoint of the coil expansion)."""
    return (sensitivities.conj() * coil_images).sum(dim=coil_dim)


def expand_coils(
    image: torch.Tensor, sensitivities: torch.Tensor, coil_dim: int = 1
) -> torch.Tensor:
    """Coil images ``S_c x`` from a complex image ``(B, H, W)`` and maps ``(B, C, H, W)``."""
    return sensitivities * image.unsqueeze(coil_dim)


def calibration_width(mask: torch.Tensor) -> int:
    """Width of the contiguous block of sampled columns around the k-space centre of ``mask``."""
    columns = mask.reshape(-1).bool()
    centre = columns.shape[0] // 2
    if not bool(columns[centre]):
        return 0
    left = centre
    while left > 0 and bool(columns[left - 1]):
        left -= 1
    right = centre
    while right < columns.shape[0] - 1 and bool(columns[right + 1]):
        right += 1
    return right - left + 1


def estimate_sensitivities(
    kspace: torch.Tensor, num_low_frequencies: int, eps: float = 1e-12
) -> torch.Tensor:
    """Coil sensitivity maps from the fully sampled calibration (centre) columns.

    The centre ``num_low_frequencies`` columns of k-space ``(B, C, H, W)`` are tapered with a
    Hann window (against ringing), transformed to low-resolution coil images and divided by
    their root sum of squares, so the maps have unit RSS wherever there is signal. This is what
    fastMRI's VarNet sensitivity network starts from, without the learnt refinement.

    Parameters
    ----------
    kspace
        Complex k-space ``(B, C, H, W)``.
    num_low_frequencies
        Width of the calibration region (columns); at least 1.
    eps
        Added to the RSS before dividing.

    Returns
    -------
    torch.Tensor
        Complex maps ``(B, C, H, W)``.
    """
    width = kspace.shape[-1]
    num_low = max(1, min(int(num_low_frequencies), width))
    start = (width - num_low + 1) // 2
    window = torch.zeros(width, dtype=kspace.real.dtype, device=kspace.device)
    window[start : start + num_low] = torch.hann_window(
        num_low + 2, periodic=False, dtype=kspace.real.dtype, device=kspace.device
    )[1:-1]
    low_res = ifft2c(kspace * window)
    return low_res / (rss(low_res, dim=1).unsqueeze(1) + eps)
