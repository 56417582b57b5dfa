"""End-to-end variational network (Sriram et al., MICCAI 2020), state-dict compatible with fastMRI.

The parameter names match fastMRI 0.3.0's ``VarNet`` (``sens_net.norm_unet.unet.*``,
``cascades.{i}.model.unet.*``, ``cascades.{i}.dc_weight``) so the official checkpoints load with
``strict=True``. Inside, k-space and images are complex tensors (``complex64``) and the FFTs are
the native centred ones of :mod:`recon_backend.fftc`; the public ``forward`` keeps fastMRI's
real-view signature. FFTs and data consistency always run in float32/complex64, also under
autocast: the U-Net outputs are cast back to float32 before they become complex again.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional

from recon_backend.fftc import fft2c, ifft2c
from recon_backend.models.unet import Unet


def _rss(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Root sum of squares of a complex tensor over ``dim``."""
    return (x.real.square() + x.imag.square()).sum(dim).sqrt()


def _complex_mask(mask: torch.Tensor) -> torch.Tensor:
    """fastMRI's real-view mask ``(B, 1, 1, W, 1)`` as a float mask for complex ``(B, C, H, W)``."""
    if mask.ndim == 5 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    return mask.to(torch.float32)


class NormUnet(nn.Module):
    """U-Net on complex images: channels are the real and imaginary parts, normalised per part.

    Parameters
    ----------
    chans, num_pools
        Width and depth of the U-Net.
    in_chans, out_chans
        Real channels (twice the number of complex channels) in and out.
    drop_prob
        Dropout probability.
    """

    def __init__(
        self,
        chans: int,
        num_pools: int,
        in_chans: int = 2,
        out_chans: int = 2,
        drop_prob: float = 0.0,
    ) -> None:
        super().__init__()
        self.unet = Unet(
            in_chans=in_chans,
            out_chans=out_chans,
            chans=chans,
            num_pool_layers=num_pools,
            drop_prob=drop_prob,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map complex ``(B, C, H, W)`` to complex ``(B, C_out, H, W)``, or fastMRI's real view
        ``(B, C, H, W, 2)`` to the same real view."""
        real_view = not x.is_complex()
        if real_view:
            if x.shape[-1] != 2:
                raise ValueError("a real-view complex tensor needs a last dimension of size 2")
            x = torch.view_as_complex(x.contiguous())
        batch = x.shape[0]
        # channels [re_0..re_{C-1}, im_0..im_{C-1}], the order of fastMRI's permute/reshape
        chans = torch.cat([x.real, x.imag], dim=1)
        parts = chans.reshape(batch, 2, -1)
        mean = parts.mean(dim=2).view(batch, 2, 1, 1)
        std = parts.std(dim=2).view(batch, 2, 1, 1)
        n_complex = chans.shape[1] // 2
        mean = mean.repeat_interleave(n_complex, dim=1)
        std = std.repeat_interleave(n_complex, dim=1)
        padded, crop = _pad_to_multiple_of_16((chans - mean) / std)
        out = self.unet(padded)[..., crop[0], crop[1]].float() * std + mean
        half = out.shape[1] // 2
        result = torch.complex(out[:, :half], out[:, half:])
        return torch.view_as_real(result) if real_view else result


def _pad_to_multiple_of_16(x: torch.Tensor) -> tuple[torch.Tensor, tuple[slice, slice]]:
    """Zero-pad height and width to multiples of 16, split as evenly as possible (extra on the
    bottom/right); return the padded tensor and the slices that undo it."""
    h, w = x.shape[-2:]
    h_to, w_to = ((h - 1) | 15) + 1, ((w - 1) | 15) + 1
    top, left = (h_to - h) // 2, (w_to - w) // 2
    if (h_to, w_to) == (h, w):
        return x, (slice(None), slice(None))
    padded = functional.pad(x, [left, w_to - w - left, top, h_to - h - top])
    return padded, (slice(top, top + h), slice(left, left + w))


class SensitivityModel(nn.Module):
    """Coil sensitivities from the fully sampled k-space centre, refined by a U-Net per coil and
    normalised to unit root sum of squares.

    Parameters
    ----------
    chans, num_pools
        Width and depth of the U-Net.
    in_chans, out_chans, drop_prob
        As for :class:`NormUnet`.
    mask_center
        Keep only the centre block of k-space before estimating (as fastMRI does by default).
    """

    def __init__(
        self,
        chans: int,
        num_pools: int,
        in_chans: int = 2,
        out_chans: int = 2,
        drop_prob: float = 0.0,
        mask_center: bool = True,
    ) -> None:
        super().__init__()
        self.mask_center = mask_center
        self.norm_unet = NormUnet(
            chans, num_pools, in_chans=in_chans, out_chans=out_chans, drop_prob=drop_prob
        )

    def forward(
        self,
        kspace: torch.Tensor,
        mask: torch.Tensor,
        num_low_frequencies: int | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Estimate maps ``(B, C, H, W)`` complex from masked complex k-space ``(B, C, H, W)`` and
        its column mask (broadcastable, e.g. ``(B, 1, 1, W)``)."""
        if self.mask_center:
            kspace = _keep_center(kspace, mask, num_low_frequencies)
        images = ifft2c(kspace)
        batch, coils, h, w = images.shape
        maps = self.norm_unet(images.reshape(batch * coils, 1, h, w)).reshape(batch, coils, h, w)
        return maps / _rss(maps, dim=1).unsqueeze(1)


def _keep_center(
    kspace: torch.Tensor, mask: torch.Tensor, num_low_frequencies: int | torch.Tensor | None
) -> torch.Tensor:
    """Zero all but the centre block of columns; its width is given, or (when ``None`` or 0)
    found from the mask as twice the run of sampled columns either side of the centre."""
    columns = mask.reshape(mask.shape[0], -1)  # (B_mask, W)
    width = columns.shape[1]
    if num_low_frequencies is None or (
        not isinstance(num_low_frequencies, torch.Tensor) and num_low_frequencies == 0
    ):
        sampled = columns.to(torch.int8)
        middle = width // 2
        # argmin finds the first unsampled column walking out from the centre
        left = torch.argmin(sampled[:, :middle].flip(1), dim=1)
        right = torch.argmin(sampled[:, middle:], dim=1)
        num_low = torch.clamp(2 * torch.minimum(left, right), min=1)
    else:
        num_low = torch.as_tensor(num_low_frequencies, device=mask.device).reshape(-1)
        num_low = num_low.to(torch.long)  # (1,) or (B,): broadcasts against the batch
    start = torch.div(width - num_low + 1, 2, rounding_mode="floor")
    index = torch.arange(width, device=kspace.device)
    keep = (index >= start[:, None]) & (index < (start + num_low)[:, None])
    return torch.where(keep[:, None, None, :], kspace, kspace.new_zeros(()))


class VarNetBlock(nn.Module):
    """One cascade: soft data consistency plus a U-Net regulariser on the coil-combined image."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.dc_weight = nn.Parameter(torch.ones(1))

    def forward(
        self,
        current_kspace: torch.Tensor,
        ref_kspace: torch.Tensor,
        mask: torch.Tensor,
        sens_maps: torch.Tensor,
    ) -> torch.Tensor:
        """One update of complex k-space ``(B, C, H, W)`` (``mask`` is a float column mask)."""
        combined = (ifft2c(current_kspace) * sens_maps.conj()).sum(dim=1, keepdim=True)
        model_term = fft2c(self.model(combined) * sens_maps)
        soft_dc = (current_kspace - ref_kspace) * mask * self.dc_weight
        return current_kspace - soft_dc - model_term


class VarNet(nn.Module):
    """The end-to-end VarNet.

    Parameters
    ----------
    num_cascades
        Number of unrolled cascades (official: 12).
    sens_chans, sens_pools
        Width and depth of the sensitivity U-Net (official: 8, 4).
    chans, pools
        Width and depth of each cascade's U-Net (official: 18, 4).
    mask_center
        Estimate sensitivities from the centre block only.
    """

    def __init__(
        self,
        num_cascades: int = 12,
        sens_chans: int = 8,
        sens_pools: int = 4,
        chans: int = 18,
        pools: int = 4,
        mask_center: bool = True,
    ) -> None:
        super().__init__()
        self.sens_net = SensitivityModel(
            chans=sens_chans, num_pools=sens_pools, mask_center=mask_center
        )
        self.cascades = nn.ModuleList(
            [VarNetBlock(NormUnet(chans, pools)) for _ in range(num_cascades)]
        )

    def forward(
        self,
        masked_kspace: torch.Tensor,
        mask: torch.Tensor,
        num_low_frequencies: int | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Reconstruct root-sum-of-squares magnitude images.

        Parameters
        ----------
        masked_kspace
            Under-sampled k-space, fastMRI's real view ``(B, C, H, W, 2)`` float32 (or complex
            ``(B, C, H, W)``).
        mask
            Column mask, ``(B, 1, 1, W, 1)`` (or ``(B, 1, 1, W)`` for complex input), bool or
            float.
        num_low_frequencies
            Width of the fully sampled centre block; found from the mask when ``None`` or 0.

        Returns
        -------
        torch.Tensor
            ``(B, H, W)`` float32 magnitude images.
        """
        kspace = masked_kspace
        if not kspace.is_complex():
            kspace = torch.view_as_complex(kspace.float().contiguous())
        column_mask = _complex_mask(mask)
        sens_maps = self.sens_net(kspace, column_mask, num_low_frequencies)
        current = kspace
        for cascade in self.cascades:
            current = cascade(current, kspace, column_mask, sens_maps)
        return _rss(ifft2c(current), dim=1)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(math.prod(p.shape) for p in model.parameters() if p.requires_grad)
