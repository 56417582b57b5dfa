"""Image-space transforms on torch tensors, with fastMRI 0.3.0's conventions.

Complex data are native complex tensors ``(..., H, W)`` (fastMRI uses a trailing real/imaginary
axis instead); crops take the same window as ``fastmri.data.transforms``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


def _window(size: int, crop: int, name: str) -> slice:
    if not 0 < crop <= size:
        raise ValueError(f"{name}: crop {crop} does not fit a size of {size}")
    start = (size - crop) // 2
    return slice(start, start + crop)


def center_crop(data: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Crop the last two dimensions of ``data`` (real or complex) to ``shape`` around the centre.

    Same window as fastMRI's ``center_crop`` (and its ``complex_center_crop`` on real views).
    """
    rows = _window(data.shape[-2], shape[0], "rows")
    cols = _window(data.shape[-1], shape[1], "columns")
    return data[..., rows, cols]


#: On complex tensors the centre crop is the same operation (fastMRI needs two functions).
complex_center_crop = center_crop


def fitting_crop(image_shape: tuple[int, ...], crop: tuple[int, int]) -> tuple[int, int]:
    """``crop`` shrunk where the image is smaller (fastMRI clips the crop likewise for FLAIR)."""
    return (min(crop[0], int(image_shape[-2])), min(crop[1], int(image_shape[-1])))


def rss(data: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Root sum of squares of magnitudes along ``dim`` (real or complex ``data``)."""
    return torch.sqrt((data.abs() ** 2).sum(dim))


class Normalised(NamedTuple):
    """An instance-normalised image with the statistics that undo the normalisation."""

    image: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor


def normalize_instance(data: torch.Tensor, eps: float = 0.0) -> Normalised:
    """Subtract the mean and divide by the standard deviation (+ ``eps``) of ``data``.

    Matches ``fastmri.data.transforms.normalize_instance`` (unbiased standard deviation).
    """
    mean = data.mean()
    std = data.std()
    return Normalised((data - mean) / (std + eps), mean, std)


def normalize_slices(images: torch.Tensor, eps: float = 1e-11, clamp: float = 6.0) -> Normalised:
    """Instance-normalise each image of a ``(B, H, W)`` batch and clamp to ``±clamp``.

    This is fastMRI's ``UnetDataTransform`` input normalisation applied slice by slice;
    ``mean`` and ``std`` come back with shape ``(B, 1, 1)`` for un-normalising.
    """
    flat = images.reshape(images.shape[0], -1)
    mean = flat.mean(dim=1).reshape(-1, 1, 1)
    std = flat.std(dim=1).reshape(-1, 1, 1)
    return Normalised(((images - mean) / (std + eps)).clamp(-clamp, clamp), mean, std)
