"""The ``reconstruct`` entry: one k-space volume to magnitude images with one method.

Slices go through in batches. A background thread reads the next batch from the file while the
device works on the current one (:class:`recon_backend.prefetch.BatchPrefetcher`: ``read_direct``
into reused buffers, page-locked for CUDA so the copy to the device is ``non_blocking``), so
peak memory does not grow with the number of slices. An out-of-memory failure
(``torch.OutOfMemoryError``) frees the failed batch, halves the device batch and retries the
same slices from the host buffer; finished slices are kept.

The root-sum-of-squares path (``rss``, ``zero-filled``, the fully sampled reference) avoids the
centring shifts for even sizes: the ``ifftshift`` before the transform only flips the sign of
every other pixel (dropped by the magnitude) and the ``fftshift`` after it is folded into the
crop as one index gather, so one unshifted ``ifft2`` into a preallocated buffer does the work
(same images as ``rss(center_crop(ifft2c(k)))`` to float32 rounding).

The image is cropped to the encoded-grid pixels that cover the header's reconSpace field of view
and, when that is not the reconSpace matrix, resampled to it (Fourier interpolation), so the
pixel spacing written is the reconSpace one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from recon_backend.cg_sense import cg_sense
from recon_backend.data import KspaceVolume
from recon_backend.data.fastmri_h5 import check_finite
from recon_backend.device import (
    PeakMemory,
    cpu_heap_policy,
    device_name,
    free_cached_memory,
    is_out_of_memory,
    memory_budget_bytes,
    precision_policy,
    release_freed_memory,
    resolve_device,
)
from recon_backend.errors import ReconError
from recon_backend.fftc import ifft2c
from recon_backend.memory_model import slice_bytes
from recon_backend.prefetch import BatchPrefetcher
from recon_backend.progress import ProgressCallback, no_progress
from recon_backend.transforms import center_crop, normalize_slices, rss

METHODS = ("rss", "zero-filled", "cg-sense", "varnet", "unet")
#: Methods that reconstruct undersampled k-space (all but the fully sampled reference).
UNDERSAMPLED_METHODS = METHODS[1:]
#: Methods that need a trained model.
MODEL_METHODS = ("varnet", "unet")

#: A fastMRI-style mask function: ``mask_func(shape, offset, seed) -> (mask, num_low)``.
MaskFunction = Callable[..., tuple[torch.Tensor, int]]

#: Default slices per batch on the CPU: the fastest of 1, 2, 4, 8 measured with
#: ``benchmarks/recon_speed.py batch`` (15 coils, 320 x 184; benchmarks/RESULTS.md).
CPU_DEFAULT_BATCH = {"rss": 2, "zero-filled": 2, "cg-sense": 1, "varnet": 1, "unet": 2}
#: On a GPU the batch is as large as the memory model allows within the budget, up to this.
GPU_MAX_BATCH = 16


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
    batch_size: int  # the device batch at the end (after any halving)
    seconds: float
    peak_memory_bytes: int
    device: str
    #: Row and column spacing (mm) of ``images`` (the reconSpace one unless clipped).
    pixel_spacing_mm: tuple[float, float] = (1.0, 1.0)
    #: Precision policy in force (see :func:`recon_backend.device.precision_policy`).
    precision: dict[str, Any] = field(default_factory=dict)
    #: Crop and resampling applied: encoded-grid crop and output size.
    crop: tuple[int, int] = (0, 0)
    #: Times the batch was halved after running out of memory.
    halvings: int = 0
    #: The memory model's estimate of the peak added per slice (bytes).
    estimated_slice_bytes: int = 0


def mask_seed(filename: str) -> tuple[int, ...]:
    """fastMRI's per-volume seed: the code points of the file name."""
    return tuple(map(ord, filename))


def low_frequencies_from_mask(mask: np.ndarray) -> int:
    """Width of the fully sampled centre as fastMRI's VarNet derives it from a mask.

    fastMRI's ``VarNetDataTransform`` passes ``num_low_frequencies = 0`` for a file's own mask
    and ``SensitivityModel.get_pad_and_num_low_freqs`` then walks out from column ``W // 2``:
    twice the shorter of the two sampled runs either side (``[.., W // 2)`` leftwards and
    ``[W // 2, ..)`` rightwards), at least 1. A block of 29 columns around the centre thus
    counts as 28: symmetric about the centre.
    """
    columns = (np.asarray(mask).reshape(-1) > 0).astype(np.int8)
    middle = columns.shape[0] // 2
    # argmin finds the first unsampled column (and 0 when a side is sampled to its end,
    # exactly like torch.argmin in fastMRI)
    left = int(np.argmin(columns[:middle][::-1])) if middle else 0
    right = int(np.argmin(columns[middle:]))
    return max(1, 2 * min(left, right))


def volume_mask(volume: KspaceVolume, mask_func: MaskFunction | None) -> VolumeMask:
    """The column mask for ``volume``: the file's own when it is undersampled, else drawn.

    A file's mask is zeroed on the header's padding columns (as fastMRI's transform does) and
    its centre width derived exactly as fastMRI derives it (:func:`low_frequencies_from_mask`).
    A drawn mask uses ``mask_func`` with the seed of the file name (same mask for every slice
    and every run) and is zero on the padding columns.
    """
    width = int(volume.kspace.shape[-1])
    left, right = volume.geometry.padding_left, volume.geometry.padding_right
    if volume.sampling_mask is not None:
        mask = volume.sampling_mask.astype(np.float32).copy()
        mask[:left] = 0
        mask[right:] = 0
        return VolumeMask(mask, low_frequencies_from_mask(mask), None)
    if mask_func is None:
        raise ReconError(f"{volume.path}: fully sampled input needs a mask to undersample it")
    seed = mask_seed(volume.path.name)
    try:
        drawn, num_low = mask_func((1, int(volume.kspace.shape[-2]), width, 2), None, seed)
    except ValueError as exc:
        raise ReconError(f"{volume.path}: mask for {width} columns: {exc}") from None
    mask = drawn.reshape(-1).to(torch.float32).numpy().copy()
    if mask.shape[0] != width:
        raise ReconError(f"{volume.path}: mask has {mask.shape[0]} columns, k-space {width}")
    mask[:left] = 0
    mask[right:] = 0
    return VolumeMask(mask, int(num_low), seed)


def model_hparams(model: nn.Module | None) -> dict[str, int]:
    """The sizes the memory model needs (``chans``, ``sens_chans``) read off a model."""
    if model is None:
        return {}
    found: dict[str, int] = {}
    cascades = getattr(model, "cascades", None)
    if cascades is not None and len(cascades):
        found["chans"] = int(cascades[0].model.unet.chans)
        found["sens_chans"] = int(getattr(model, "sens_net").norm_unet.unet.chans)  # noqa: B009
    elif hasattr(model, "chans"):
        found["chans"] = int(model.chans)  # type: ignore[arg-type]
    return found


def estimate_batch_size(
    volume: KspaceVolume,
    method: str,
    device: torch.device,
    budget_bytes: int | None = None,
    hparams: dict[str, int] | None = None,
) -> int:
    """Default slices per batch for ``method`` on ``device``.

    On the CPU the measured best (:data:`CPU_DEFAULT_BATCH`), lowered if the memory model says
    it would not fit the budget; on a GPU as many slices as the memory model
    (:func:`recon_backend.memory_model.slice_bytes`) fits into the budget, up to
    :data:`GPU_MAX_BATCH`. Never more than the volume's slices, at least 1.
    """
    _, coils, height, width = (int(n) for n in volume.kspace.shape)
    crop = volume.geometry.image_crop((height, width))
    per_slice = slice_bytes(method, coils, height, width, crop=crop, hparams=hparams)
    budget = memory_budget_bytes(device) if budget_bytes is None else budget_bytes
    fits = max(1, budget // max(per_slice, 1))
    cap = CPU_DEFAULT_BATCH[method] if device.type == "cpu" else GPU_MAX_BATCH
    return max(1, min(cap, fits, volume.num_slices))


def _shift_gather_index(size: int, crop: int, device: torch.device) -> torch.Tensor:
    """Indices into an unshifted transform that give ``center_crop(fftshift(x), crop)``."""
    start = (size - crop) // 2
    return (torch.arange(start, start + crop, device=device) + size // 2) % size


class _BatchRunner:
    """Reconstructs one device batch of a volume with one method."""

    def __init__(
        self,
        volume: KspaceVolume,
        method: str,
        device: torch.device,
        model: nn.Module | None,
        mask: VolumeMask | None,
        cg_iterations: int,
        with_reference: bool,
    ) -> None:
        self.volume = volume
        self.method = method
        self.device = device
        self.model = model
        self.mask = mask
        self.cg_iterations = cg_iterations
        self.with_reference = with_reference and volume.fully_sampled
        shape = tuple(int(n) for n in volume.kspace.shape)
        self.height, self.width = shape[-2], shape[-1]
        self.crop = volume.geometry.image_crop(shape)
        self.mask_t = torch.from_numpy(mask.mask).to(device).reshape(1, 1, 1, -1) if mask else None
        self.fast_rss = self.height % 2 == 0 and self.width % 2 == 0
        self.rows = _shift_gather_index(self.height, self.crop[0], device)
        self.cols = _shift_gather_index(self.width, self.crop[1], device)
        self._work: torch.Tensor | None = None

    def __call__(self, kspace: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Images (and the fully sampled reference) of k-space ``(B, C, H, W)`` on the device.

        The k-space tensor is this reconstruction's own buffer: it is masked in place.
        """
        reference = self.rss(kspace) if self.with_reference else None
        if self.method == "rss":
            return (reference if reference is not None else self.rss(kspace)), reference
        assert self.mask is not None and self.mask_t is not None
        # in place: the batch is our own buffer
        masked = kspace.mul_(self.mask_t)
        if self.method == "zero-filled":
            # the sign of a zero cannot change a magnitude: no "+ 0.0" pass needed here
            return self.rss(masked), reference
        masked.add_(0.0)  # k * mask + 0.0 as fastMRI: no negative zeros reach the networks
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
        zero_filled = self.rss(masked)
        normalised = normalize_slices(zero_filled)
        output = self.model(normalised.image.unsqueeze(1)).squeeze(1).float()
        return output * normalised.std + normalised.mean, reference

    def rss(self, kspace: torch.Tensor) -> torch.Tensor:
        """Root sum of squares of the coil images, cropped: one unshifted FFT and a gather."""
        if not self.fast_rss:
            return rss(center_crop(ifft2c(kspace), self.crop), dim=1)
        work = self._work
        if work is None or work.shape[0] < kspace.shape[0]:
            work = self._work = torch.empty_like(kspace)
        out = work[: kspace.shape[0]]
        torch.fft.ifft2(kspace, dim=(-2, -1), norm="ortho", out=out)
        cropped = out[:, :, self.rows[:, None], self.cols[None, :]]
        return rss(cropped, dim=1)

    def release(self) -> None:
        """Drop the FFT work buffer (after an out-of-memory failure)."""
        self._work = None


def _mmap_threshold(method: str) -> int:
    """glibc mmap threshold for a CPU run (see :func:`recon_backend.device.cpu_heap_policy`).

    CG-SENSE allocates several coil-sized arrays per batch: mapped (4 MiB threshold) they go
    back to the system when freed, so the heap does not fragment and the peak stays flat.
    rss and zero-filled reuse their large buffers, so glibc's ceiling (no forced mapping)
    costs them nothing; the networks' many activations would run about 4x slower mapped.
    """
    if method in MODEL_METHODS:
        return 64 << 20
    if method == "cg-sense":
        return 4 << 20
    return 32 << 20


def resample_images(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Fourier-interpolate magnitude images ``(B, rows, cols)`` to ``size``; negatives clipped."""
    from scipy.signal import resample

    out = images
    for axis, target in ((1, size[0]), (2, size[1])):
        if out.shape[axis] != target:
            out = resample(out, target, axis=axis)
    return np.clip(out, 0.0, None).astype(np.float32)


def reconstruct(
    volume: KspaceVolume,
    method: str,
    *,
    model: nn.Module | None = None,
    mask_func: MaskFunction | None = None,
    device: str | torch.device = "auto",
    batch_size: int | None = None,
    cg_iterations: int = 15,
    with_reference: bool = True,
    precision: str = "fp32",
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
        Slices per batch; default :func:`estimate_batch_size`.
    cg_iterations
        Conjugate-gradient iterations for ``cg-sense``.
    with_reference
        Also compute the fully sampled RSS reference of fully sampled input (for the metrics;
        one more inverse FFT per slice for the undersampled methods).
    precision
        ``fp32``, ``tf32`` or ``amp`` (:func:`recon_backend.device.precision_policy`).
    progress
        Called with ``(slices done, slices, message)`` after each batch.

    Returns
    -------
    Reconstruction
        Images on the reconSpace grid, the fully sampled reference when there is one, the
        mask, timing, peak memory, the device's name and the precision policy.

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
    hparams = model_hparams(model)
    runner = _BatchRunner(
        volume, method, torch_device, model, mask, cg_iterations, with_reference or method == "rss"
    )
    n_slices = volume.num_slices
    batch = batch_size or estimate_batch_size(volume, method, torch_device, hparams=hparams)
    shape = tuple(int(n) for n in volume.kspace.shape)
    out_size = volume.geometry.output_size(shape)
    resample = out_size != runner.crop
    images = np.empty((n_slices, *out_size), dtype=np.float32)
    keep_reference = volume.fully_sampled and (with_reference or method == "rss")
    # for rss the reference is the image itself: one array, not two
    reference = (images if method == "rss" else np.empty_like(images)) if keep_reference else None
    message = f"{volume.path.name}: {method}"
    pinned = torch_device.type == "cuda"
    # a CPU device computes on every core: reading on a second thread only competes with it
    background = torch_device.type != "cpu"
    # rss and zero-filled carry a NaN or Inf of a slice's k-space into its image, so there the
    # (small) images are checked instead of the k-space; CG-SENSE, for one, would stop at once
    # on a NaN residual and return zeros, so the other methods check their input
    check_input = background or method not in ("rss", "zero-filled")
    halvings = 0
    started = time.perf_counter()
    heap = cpu_heap_policy(torch_device, _mmap_threshold(method))
    with (
        heap,
        PeakMemory(torch_device) as peak,
        torch.inference_mode(),
        precision_policy(torch_device, precision) as policy,
        BatchPrefetcher(
            volume, batch, pinned=pinned, background=background, check=check_input
        ) as reader,
    ):
        progress(0, n_slices, message)
        for host in reader:
            done = host.start
            while done < host.stop:
                stop = min(done + batch, host.stop)
                part = host.data[done - host.start : stop - host.start]
                failed = False
                try:
                    output, ref = runner(part.to(torch_device, non_blocking=pinned))
                    _store(images, done, stop, output, resample, out_size)
                    if reference is not None and ref is not None and reference is not images:
                        _store(reference, done, stop, ref, resample, out_size)
                    if not check_input:
                        _check_outputs(volume, images, done, stop)
                except BaseException as exc:
                    if not is_out_of_memory(exc, torch_device):
                        raise
                    failed = True
                if failed:
                    # the failed batch's tensors died with the except block; free them now
                    runner.release()
                    free_cached_memory(torch_device)
                    if stop - done == 1:
                        raise ReconError(
                            f"{volume.path}: out of memory on {torch_device} even one slice at "
                            "a time; try --device cpu or a machine with more memory"
                        ) from None
                    batch = max(1, (stop - done) // 2)
                    halvings += 1
                    continue
                done = stop
            if not pinned:
                # hand freed heap pages back so the peak does not creep with the slice count
                release_freed_memory(torch_device)
            reader.release(host)
            progress(host.stop, n_slices, message)
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
        pixel_spacing_mm=volume.geometry.output_pixel_spacing_mm(shape),
        precision=policy,
        crop=runner.crop,
        halvings=halvings,
        estimated_slice_bytes=slice_bytes(method, *shape[1:], crop=runner.crop, hparams=hparams),
    )


def _check_outputs(volume: KspaceVolume, images: np.ndarray, start: int, stop: int) -> None:
    """Raise naming the first slice of ``images[start:stop]`` that is not finite."""
    check_finite(images[start:stop], volume.path, start)


def _store(
    target: np.ndarray,
    start: int,
    stop: int,
    output: torch.Tensor,
    resample: bool,
    size: tuple[int, int],
) -> None:
    """Copy a batch of device images into ``target[start:stop]`` (resampled when needed)."""
    host = output.float().cpu().numpy()
    target[start:stop] = resample_images(host, size) if resample else host


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
