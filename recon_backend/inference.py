"""The ``reconstruct`` entry: one k-space volume to magnitude images with one method.

Slices go through in batches sized to a memory budget (or ``batch_size``), read from disk batch
by batch when the volume is lazy, so peak memory does not grow with the number of slices. An
out-of-memory failure halves the batch and retries the same slices; finished slices are kept.
FFTs and data consistency run in complex64.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from recon_backend.cg_sense import cg_sense
from recon_backend.coil_combine import calibration_width, rss_combine
from recon_backend.data import H5Kspace, KspaceVolume
from recon_backend.device import (
    PeakMemory,
    cpu_heap_policy,
    device_name,
    free_cached_memory,
    is_out_of_memory,
    memory_budget_bytes,
    release_freed_memory,
    resolve_device,
)
from recon_backend.errors import ReconError
from recon_backend.fftc import ifft2c
from recon_backend.progress import ProgressCallback, no_progress
from recon_backend.transforms import center_crop, fitting_crop, normalize_slices

METHODS = ("rss", "zero-filled", "cg-sense", "varnet", "unet")
#: Methods that reconstruct undersampled k-space (all but the fully sampled reference).
UNDERSAMPLED_METHODS = METHODS[1:]
#: Methods that need a trained model.
MODEL_METHODS = ("varnet", "unet")

#: A fastMRI-style mask function: ``mask_func(shape, offset, seed) -> (mask, num_low)``.
MaskFunction = Callable[..., tuple[torch.Tensor, int]]

#: Rough working memory per slice, in multiples of one slice of complex64 multi-coil k-space
#: (measured on small inputs; the budget is a guide, out-of-memory retries do the rest).
_WORK_FACTOR = {"rss": 4, "zero-filled": 5, "cg-sense": 16, "varnet": 12, "unet": 6}
#: Batches beyond this do not run faster on a CPU.
_CPU_MAX_BATCH = 8
_GPU_MAX_BATCH = 32


@dataclass(frozen=True)
class VolumeMask:
    """The column mask used for a volume and where it came from."""

    mask: np.ndarray  # (W,) float32, 1 = sampled
    num_low_frequencies: int
    seed: tuple[int, ...] | None  # None: the file's own mask


@dataclass(frozen=True)
class Reconstruction:
    """The result of :func:`reconstruct`."""

    images: np.ndarray  # (slices, rows, columns) float32 magnitudes
    reference: np.ndarray | None  # fully sampled RSS (or the file's stored one), same shape
    mask: VolumeMask | None  # None for ``rss``
    batch_size: int  # the batch size at the end (after any halving)
    seconds: float
    peak_memory_bytes: int
    device: str


def mask_seed(filename: str) -> tuple[int, ...]:
    """fastMRI's per-volume seed: the code points of the file name."""
    return tuple(map(ord, filename))


def volume_mask(volume: KspaceVolume, mask_func: MaskFunction | None) -> VolumeMask:
    """The column mask for ``volume``: the file's own when it is undersampled, else drawn.

    A drawn mask uses ``mask_func`` with the seed of the file name (same mask for every slice
    and every run) and is zero on the header's padding columns.
    """
    width = int(volume.kspace.shape[-1])
    if volume.sampling_mask is not None:
        mask = volume.sampling_mask.astype(np.float32)
        return VolumeMask(mask, calibration_width(torch.from_numpy(mask)), None)
    if mask_func is None:
        raise ReconError(f"{volume.path}: fully sampled input needs a mask to undersample it")
    seed = mask_seed(volume.path.name)
    drawn, num_low = mask_func((1, int(volume.kspace.shape[-2]), width, 2), None, seed)
    mask = drawn.reshape(-1).to(torch.float32).numpy().copy()
    if mask.shape[0] != width:
        raise ReconError(f"{volume.path}: mask has {mask.shape[0]} columns, k-space {width}")
    mask[: volume.geometry.padding_left] = 0
    mask[volume.geometry.padding_right :] = 0
    return VolumeMask(mask, int(num_low), seed)


def estimate_batch_size(
    volume: KspaceVolume, method: str, device: torch.device, budget_bytes: int | None = None
) -> int:
    """Slices per batch that fit the memory budget of ``device`` (at least 1)."""
    _, coils, height, width = (int(n) for n in volume.kspace.shape)
    per_slice = coils * height * width * 8 * _WORK_FACTOR[method]
    if method == "unet":
        rows, cols = volume.geometry.recon_size
        per_slice += rows * cols * 4 * 256 * 4
    budget = memory_budget_bytes(device) if budget_bytes is None else budget_bytes
    cap = _GPU_MAX_BATCH if device.type == "cuda" else _CPU_MAX_BATCH
    return max(1, min(cap, budget // max(per_slice, 1), volume.num_slices))


class _BatchRunner:
    """Reconstructs slices ``[start, stop)`` of one volume with one method on one device."""

    def __init__(
        self,
        volume: KspaceVolume,
        method: str,
        device: torch.device,
        model: nn.Module | None,
        mask: VolumeMask | None,
        cg_iterations: int,
    ) -> None:
        self.volume = volume
        self.method = method
        self.device = device
        self.model = model
        self.mask = mask
        self.cg_iterations = cg_iterations
        self.crop = fitting_crop(tuple(volume.kspace.shape), volume.geometry.recon_size)
        self.mask_t = torch.from_numpy(mask.mask).to(device).reshape(1, 1, 1, -1) if mask else None

    def __call__(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        source = self.volume.kspace[start:stop]
        kspace = torch.from_numpy(np.ascontiguousarray(source)).to(self.device)
        # in-place masking only when the batch is our own copy, never the caller's array
        owned = isinstance(self.volume.kspace, H5Kspace) or kspace.data_ptr() != source.ctypes.data
        reference = None
        if self.volume.fully_sampled:
            reference = self._rss(kspace)
        if self.method == "rss":
            return (reference if reference is not None else self._rss(kspace)), reference
        assert self.mask is not None and self.mask_t is not None
        # k * mask + 0.0 (no negative zeros); in place saves two batch-sized copies
        masked = kspace.mul_(self.mask_t).add_(0.0) if owned else kspace * self.mask_t + 0.0
        del kspace
        if self.method == "zero-filled":
            return self._rss(masked), reference
        if self.method == "cg-sense":
            image = cg_sense(
                masked, self.mask_t, self.mask.num_low_frequencies, iterations=self.cg_iterations
            )
            return center_crop(image.abs(), self.crop), reference
        assert self.model is not None
        if self.method == "varnet":
            batch_mask = self.mask_t.expand(masked.shape[0], 1, 1, -1)
            output = self.model(masked, batch_mask, self.mask.num_low_frequencies)
            return center_crop(output.float(), self.crop), reference
        # unet: fastMRI's UnetDataTransform input, then undo the normalisation
        zero_filled = self._rss(masked)
        normalised = normalize_slices(zero_filled)
        output = self.model(normalised.image.unsqueeze(1)).squeeze(1).float()
        return output * normalised.std + normalised.mean, reference

    def _rss(self, kspace: torch.Tensor) -> torch.Tensor:
        return rss_combine(center_crop(ifft2c(kspace), self.crop))


def _mmap_threshold(method: str) -> int:
    """glibc mmap threshold for a CPU run (see :func:`recon_backend.device.cpu_heap_policy`)."""
    if method in MODEL_METHODS:
        return 64 << 20
    return 4 << 20


def reconstruct(
    volume: KspaceVolume,
    method: str,
    *,
    model: nn.Module | None = None,
    mask_func: MaskFunction | None = None,
    device: str | torch.device = "auto",
    batch_size: int | None = None,
    cg_iterations: int = 15,
    progress: ProgressCallback = no_progress,
) -> Reconstruction:
    """Reconstruct every slice of ``volume`` with ``method``.

    Parameters
    ----------
    volume
        The k-space (preferably loaded with ``lazy=True`` so slices are read batch by batch).
    method
        One of :data:`METHODS`.
    model
        The network for ``varnet`` and ``unet`` (moved to ``device`` and put in eval mode).
    mask_func
        Mask function for undersampling fully sampled input (``create_mask_for_mask_type``);
        not needed for ``rss`` or for input that is undersampled already.
    device
        ``auto``, ``cuda``, ``mps``, ``cpu`` or a ``torch.device``.
    batch_size
        Slices per batch; default from the device's memory budget.
    cg_iterations
        Conjugate-gradient iterations for ``cg-sense``.
    progress
        Called with ``(slices done, slices, message)`` after each batch.

    Returns
    -------
    Reconstruction
        Images cropped to the header's reconSpace, the fully sampled reference when there is one,
        the mask, timing, peak memory and the device's name.

    Raises
    ------
    ReconError
        Unknown method, a model missing for a network method, ``rss`` on undersampled input,
        or out of memory even one slice at a time.
    """
    if method not in METHODS:
        raise ReconError(f"--method: {method!r}, expected one of {', '.join(METHODS)}")
    if method in MODEL_METHODS and model is None:
        raise ReconError(f"{volume.path}: method {method} needs a model (--model PATH)")
    if method == "rss" and not volume.fully_sampled:
        raise ReconError(
            f"{volume.path}: mask: the file holds undersampled k-space; method rss needs fully "
            "sampled k-space"
        )
    if batch_size is not None and batch_size < 1:
        raise ReconError(f"--batch-size: {batch_size}, expected a positive number")
    torch_device = device if isinstance(device, torch.device) else resolve_device(device)
    mask = None if method == "rss" else volume_mask(volume, mask_func)
    if model is not None:
        model = model.to(torch_device).eval()
    runner = _BatchRunner(volume, method, torch_device, model, mask, cg_iterations)
    n_slices = volume.num_slices
    batch = batch_size or estimate_batch_size(volume, method, torch_device)
    rows, cols = runner.crop
    images = np.empty((n_slices, rows, cols), dtype=np.float32)
    reference = np.empty_like(images) if volume.fully_sampled else None
    message = f"{volume.path.name}: {method}"
    started = time.perf_counter()
    heap = cpu_heap_policy(torch_device, _mmap_threshold(method))
    with heap, PeakMemory(torch_device) as peak, torch.inference_mode():
        done = 0
        progress(0, n_slices, message)
        while done < n_slices:
            stop = min(done + batch, n_slices)
            try:
                output, ref = runner(done, stop)
                images[done:stop] = output.cpu().numpy()
                if reference is not None and ref is not None:
                    reference[done:stop] = ref.cpu().numpy()
            except (RuntimeError, MemoryError) as exc:
                if not is_out_of_memory(exc):
                    raise
                free_cached_memory(torch_device)
                if stop - done == 1:
                    raise ReconError(
                        f"{volume.path}: out of memory on {torch_device} even one slice at a "
                        "time; try --device cpu or a machine with more memory"
                    ) from None
                batch = max(1, (stop - done) // 2)
                continue
            done = stop
            release_freed_memory(torch_device)
            progress(done, n_slices, message)
    seconds = time.perf_counter() - started
    stored = volume.reference
    if reference is not None and stored is not None and stored.shape == images.shape:
        reference = stored.astype(np.float32, copy=False)
    return Reconstruction(
        images=images,
        reference=reference,
        mask=mask,
        batch_size=batch,
        seconds=seconds,
        peak_memory_bytes=peak.peak_bytes,
        device=device_name(torch_device),
    )


def describe_mask(mask: VolumeMask | None, extra: dict[str, Any]) -> dict[str, Any]:
    """Provenance fields for a mask: type, acceleration, centre fraction, seed, sampled columns."""
    if mask is None:
        return {"mask_type": None, "accel": None, "center_fraction": None, "seed": None}
    fields = dict(extra)
    if mask.seed is None:
        fields = {"mask_type": "from file", "accel": None, "center_fraction": None}
    fields["seed"] = list(mask.seed) if mask.seed is not None else None
    fields["num_low_frequencies"] = mask.num_low_frequencies
    fields["sampled_columns"] = int(mask.mask.sum())
    return fields
