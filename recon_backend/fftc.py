"""Centred, orthonormal 2-D FFTs over the last two spatial dimensions.

Inputs are complex tensors (``torch.complex64``) of shape ``(..., H, W)``; the native
``torch.fft.fftshift``/``ifftshift`` give the same result as fastMRI's roll-based shifts.
"""

import torch


def fft2c(image: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D FFT of a complex tensor over its last two dimensions."""
    x = torch.fft.ifftshift(image, dim=(-2, -1))
    x = torch.fft.fft2(x, dim=(-2, -1), norm="ortho")
    return torch.fft.fftshift(x, dim=(-2, -1))


def ifft2c(kspace: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D inverse FFT of a complex tensor over its last two dimensions."""
    x = torch.fft.ifftshift(kspace, dim=(-2, -1))
    x = torch.fft.ifft2(x, dim=(-2, -1), norm="ortho")
    return torch.fft.fftshift(x, dim=(-2, -1))
