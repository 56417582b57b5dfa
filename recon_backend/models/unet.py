"""The U-Net of fastMRI (Ronneberger et al. 2015, as used by Zbontar et al. 2018).

Module tree and parameter names match fastMRI 0.3.0's ``Unet`` so its checkpoints load with
``strict=True``: ``down_sample_layers.{j}.layers.{0,4}`` (each block is conv, instance norm,
leaky ReLU, dropout, twice; the dropout layers hold no weights but keep the indices in line),
``conv``, ``up_transpose_conv.{j}.layers.0`` and ``up_conv.{j}`` whose last entry is a
``Sequential`` of a block and a 1x1 convolution.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional


class ConvBlock(nn.Module):
    """Two 3x3 convolutions, each followed by instance norm, leaky ReLU (0.2) and 2-D dropout."""

    def __init__(self, in_chans: int, out_chans: int, drop_prob: float) -> None:
        super().__init__()
        self.in_chans = in_chans
        self.out_chans = out_chans
        self.drop_prob = drop_prob
        layers: list[nn.Module] = []
        for chans_in in (in_chans, out_chans):
            layers += [
                nn.Conv2d(chans_in, out_chans, kernel_size=3, padding=1, bias=False),
                nn.InstanceNorm2d(out_chans),
                nn.LeakyReLU(negative_slope=0.2, inplace=True),
                nn.Dropout2d(drop_prob),
            ]
        self.layers = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Map ``(N, in_chans, H, W)`` to ``(N, out_chans, H, W)``."""
        return self.layers(image)


class TransposeConvBlock(nn.Module):
    """A stride-2 transposed convolution that doubles height and width, then norm and leaky ReLU."""

    def __init__(self, in_chans: int, out_chans: int) -> None:
        super().__init__()
        self.in_chans = in_chans
        self.out_chans = out_chans
        self.layers = nn.Sequential(
            nn.ConvTranspose2d(in_chans, out_chans, kernel_size=2, stride=2, bias=False),
            nn.InstanceNorm2d(out_chans),
            nn.LeakyReLU(negative_slope=0.2, inplace=True),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Map ``(N, in_chans, H, W)`` to ``(N, out_chans, 2H, 2W)``."""
        return self.layers(image)


class Unet(nn.Module):
    """U-Net with average-pool down-sampling and transposed-convolution up-sampling.

    Parameters
    ----------
    in_chans, out_chans
        Channels of the input and the output.
    chans
        Channels after the first block; doubled at every level down.
    num_pool_layers
        Number of down-sampling (and up-sampling) levels.
    drop_prob
        Dropout probability inside the blocks.
    """

    def __init__(
        self,
        in_chans: int,
        out_chans: int,
        chans: int = 32,
        num_pool_layers: int = 4,
        drop_prob: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        self.out_chans = out_chans
        self.chans = chans
        self.num_pool_layers = num_pool_layers
        self.drop_prob = drop_prob

        widths = [chans * 2**level for level in range(num_pool_layers)]
        self.down_sample_layers = nn.ModuleList(
            [ConvBlock(in_chans, chans, drop_prob)]
            + [ConvBlock(width, width * 2, drop_prob) for width in widths[:-1]]
        )
        self.conv = ConvBlock(widths[-1], widths[-1] * 2, drop_prob)
        up_conv: list[nn.Module] = [
            ConvBlock(width * 2, width, drop_prob) for width in reversed(widths[1:])
        ]
        up_conv.append(
            nn.Sequential(
                ConvBlock(chans * 2, chans, drop_prob),
                nn.Conv2d(chans, out_chans, kernel_size=1, stride=1),
            )
        )
        # registered in fastMRI's order so the state-dict keys come out in the same order
        self.up_conv = nn.ModuleList(up_conv)
        self.up_transpose_conv = nn.ModuleList(
            [TransposeConvBlock(width * 2, width) for width in reversed(widths)]
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Map ``(N, in_chans, H, W)`` to ``(N, out_chans, H, W)``.

        Odd sizes are handled like fastMRI: after up-sampling, a feature map one pixel short
        of its skip connection is reflect-padded on the right or bottom.
        """
        skips = []
        output = image
        for block in self.down_sample_layers:
            output = block(output)
            skips.append(output)
            output = functional.avg_pool2d(output, kernel_size=2, stride=2)
        output = self.conv(output)
        for up, block in zip(self.up_transpose_conv, self.up_conv, strict=True):
            skip = skips.pop()
            output = up(output)
            short_h = skip.shape[-2] - output.shape[-2]
            short_w = skip.shape[-1] - output.shape[-1]
            if short_h or short_w:
                output = functional.pad(output, [0, short_w, 0, short_h], mode="reflect")
            output = block(torch.cat([output, skip], dim=1))
        return output
