"""CG-SENSE: iterative SENSE reconstruction by conjugate gradients (Pruessmann et al. 2001).

Solves ``(A^H A + lambda I) x = A^H y`` for the complex image ``x`` of each slice, with
``A = M F S`` (coil sensitivities ``S`` estimated from the calibration region, centred
orthonormal FFT ``F``, sampling mask ``M``). Works on batches ``(B, C, H, W)`` on any torch device;
all arithmetic stays in complex64.
"""

from __future__ import annotations

import torch

from recon_backend.coil_combine import estimate_sensitivities
from recon_backend.fftc import fftshift2, ifftshift2


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-slice real inner product ``Re <a, b>`` of ``(B, H, W)`` complex tensors."""
    return (a.conj() * b).real.sum(dim=(-2, -1))


def cg_sense(
    masked_kspace: torch.Tensor,
    mask: torch.Tensor,
    num_low_frequencies: int,
    *,
    iterations: int = 15,
    tolerance: float = 1e-5,
    regularisation: float = 0.0,
    sensitivities: torch.Tensor | None = None,
) -> torch.Tensor:
    """Reconstruct complex images from undersampled multi-coil k-space.

    Parameters
    ----------
    masked_kspace
        Complex k-space ``(B, C, H, W)``, zero where not sampled.
    mask
        Sampling mask broadcastable to ``masked_kspace`` (1 = sampled), e.g. ``(1, 1, 1, W)``.
    num_low_frequencies
        Width of the fully sampled centre block used for the sensitivities.
    iterations
        Maximum number of conjugate-gradient iterations (few iterations also regularise).
    tolerance
        Stop a slice once its residual norm falls below ``tolerance`` times the initial one.
    regularisation
        Tikhonov weight ``lambda`` relative to the mean of ``|A^H y|^2`` per pixel scale.
    sensitivities
        Precomputed maps ``(B, C, H, W)``; default estimated from the calibration columns.

    Returns
    -------
    torch.Tensor
        Complex images ``(B, H, W)``, on the scale of the RSS of the coil images.
    """
    mask = mask.to(masked_kspace.real.dtype)
    if sensitivities is None:
        sensitivities = estimate_sensitivities(masked_kspace, num_low_frequencies)
    # Work in FFT order (images ifftshift-ed, k-space unshifted): the centred transforms then
    # need no shifts inside the loop, and two preallocated coil-sized buffers serve every
    # iteration, so the loop allocates no large tensors at all.
    dims = (-2, -1)
    sens = ifftshift2(sensitivities)
    del sensitivities
    sens_conj = sens.conj()
    mask_fft = ifftshift2(mask.expand(*mask.shape[:-2], masked_kspace.shape[-2], -1))
    coil = torch.empty_like(masked_kspace)
    kspace = torch.empty_like(masked_kspace)

    def normal(x: torch.Tensor) -> torch.Tensor:
        torch.mul(sens, x.unsqueeze(1), out=coil)
        torch.fft.fft2(coil, dim=dims, norm="ortho", out=kspace)
        kspace.mul_(mask_fft)
        torch.fft.ifft2(kspace, dim=dims, norm="ortho", out=coil)
        combined = coil.mul_(sens_conj).sum(dim=1)
        return combined.add_(x, alpha=regularisation) if regularisation else combined

    rhs = ifftshift2(masked_kspace)
    rhs.mul_(mask_fft)
    torch.fft.ifft2(rhs, dim=dims, norm="ortho", out=coil)
    del rhs
    rhs = coil.mul_(sens_conj).sum(dim=1)
    x = torch.zeros_like(rhs)
    residual = rhs.clone()
    direction = residual.clone()
    rr = _dot(residual, residual)
    stop = rr * tolerance**2
    for _ in range(iterations):
        active = rr > stop
        if not bool(active.any()):
            break
        q = normal(direction)
        pq = _dot(direction, q)
        alpha = torch.where(active & (pq > 0), rr / torch.where(pq > 0, pq, 1.0), 0.0)
        x.add_(alpha[:, None, None] * direction)
        residual.sub_(alpha[:, None, None] * q)
        rr_new = _dot(residual, residual)
        beta = torch.where(active, rr_new / torch.where(rr > 0, rr, 1.0), 0.0)
        direction.mul_(beta[:, None, None]).add_(residual)
        rr = torch.where(active, rr_new, rr)
    return fftshift2(x)
