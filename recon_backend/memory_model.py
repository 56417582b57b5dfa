"""How much memory one slice of a batch needs, per method: the model behind the default batch.

A slice's working set is written in three units: ``K``, one slice of complex64 multi-coil
k-space (``coils * H * W * 8`` bytes, the size of every coil-array tensor); ``S``, one float32
feature map of the sensitivity U-Net over all coils at its width (``coils * H16 * W16 * 4 *
sens_chans``, ``H16``/``W16`` padded to multiples of 16); and ``U``, one float32 feature map of a
cascade U-Net (``H16 * W16 * 4 * chans``). The coefficients were measured (peak memory of batches
of 1 and 3 slices, so the fixed cost cancels; ``benchmarks/memory_model.py``, results in
``benchmarks/RESULTS.md``); a coefficient says how many such tensors are alive at the peak.
``benchmarks/gpu.sh`` checks the model against the CUDA allocator's peak.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Coefficients:
    """Tensors alive at the peak per slice: coil arrays, sensitivity maps, U-Net maps."""

    kspace: float
    sens_maps: float = 0.0
    unet_maps: float = 0.0


#: Measured on the CPU (torch 2.13, glibc; 15 coils, 320 x 184, ``run_recon`` with the fully
#: sampled reference) and rounded up: rss 2.4 K, zero-filled 3.9 K, CG-SENSE 12.5 K, VarNet
#: (demo size) 43 K, U-Net (32 channels) 10 K per slice. The VarNet's split between its three
#: terms follows the tensors its forward pass keeps (scaled to the measured total).
COEFFICIENTS: dict[str, Coefficients] = {
    "rss": Coefficients(kspace=3.0),
    "zero-filled": Coefficients(kspace=4.5),
    "cg-sense": Coefficients(kspace=14.0),
    "varnet": Coefficients(kspace=20.0, sens_maps=11.0, unet_maps=11.0),
    "unet": Coefficients(kspace=5.0, unet_maps=12.0),
}


def _pad16(n: int) -> int:
    return ((n - 1) | 15) + 1


def slice_bytes(
    method: str,
    coils: int,
    height: int,
    width: int,
    *,
    crop: tuple[int, int] | None = None,
    hparams: Mapping[str, int] | None = None,
) -> int:
    """Estimated bytes one slice adds to a batch's peak for ``method``.

    Parameters
    ----------
    method
        ``rss``, ``zero-filled``, ``cg-sense``, ``varnet`` or ``unet``.
    coils, height, width
        The k-space slice ``(coils, H, W)``.
    crop
        Image size the U-Net sees (``unet``); default ``(H, W)``.
    hparams
        Model hyper-parameters (``chans``, ``sens_chans`` for the VarNet; ``chans`` for the
        U-Net); default the official fastMRI sizes.
    """
    c = COEFFICIENTS[method]
    k = coils * height * width * 8
    total = c.kspace * k
    params = dict(hparams or {})
    if method == "varnet":
        h16, w16 = _pad16(height), _pad16(width)
        total += c.sens_maps * coils * h16 * w16 * 4 * params.get("sens_chans", 8)
        total += c.unet_maps * h16 * w16 * 4 * params.get("chans", 18)
    elif method == "unet":
        rows, cols = crop or (height, width)
        total += c.unet_maps * _pad16(rows) * _pad16(cols) * 4 * params.get("chans", 256)
    return int(total)
