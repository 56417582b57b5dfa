"""Simulated multi-coil k-space from real magnitude images that ship offline.

No installable package ships raw multi-coil k-space, so the demo and the demo model's training
use the MNI152 2009 T1 template bundled with nilearn (1 mm, 197 x 233 x 189, skull-stripped)
as the magnitude, multiply it by a smooth phase and smooth synthetic coil sensitivities, and
FFT it into fastMRI's layout: ``(slices, coils, 2H, W)`` with 2x read-out oversampling (the
object fills the central half of the read-out direction, as fastMRI's 640-row k-space holds a
320-row image), plus complex Gaussian noise. All randomness comes from the
``numpy.random.Generator`` passed in.

The split (template voxel index ``z``, inferior to superior; gaps keep near-identical
neighbouring slices apart):

* **demo** (:func:`demo_volume`): axial slices with ``z`` in ``DEMO_Z`` = [72, 96), the
  ventricle level; the demo adds synthetic lesions to them.
* **held-out** (:func:`heldout_volume`): axial slices with ``z`` in ``HELDOUT_Z`` = [104, 120),
  used only to evaluate the demo model.
* **training** (:func:`training_volume`): only voxels with ``z`` in ``TRAINING_Z`` = [0, 66) and
  [126, 189): axial slices there, and coronal and sagittal slices cut from those two slabs,
  with flips, rotations, zoom, synthetic contrasts (mixtures of the bundled grey-matter,
  white-matter and CSF maps), gamma, a smooth bias field and random blobs.

No voxel of the demo or held-out slabs ever reaches a training image (the tests check this by
marking those voxels).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import torch
from scipy import ndimage

from recon_backend.fftc import fft2c

DEMO_Z = range(72, 96)
HELDOUT_Z = range(104, 120)
TRAINING_Z = (range(0, 66), range(126, 189))
#: Default image size (the k-space is ``2 * IMAGE_SIZE`` by ``IMAGE_SIZE``).
IMAGE_SIZE = 160
#: Coils and noise the demo model was trained with; the demo should simulate with these.
N_COILS = 8
NOISE_STD = 0.002

Volume = np.ndarray  # (x, y, z) float32, x left->right, y posterior->anterior, z inferior->superior


@functools.cache
def template_volumes() -> dict[str, Volume]:
    """The bundled MNI152 T1 template and its tissue maps (``t1``, ``gm``, ``wm``, ``mask``).

    Returns
    -------
    dict
        float32 arrays of shape (197, 233, 189) in [0, 1]; read from nilearn's package data,
        so no network is needed.
    """
    from nilearn import datasets

    loaders = {
        "t1": datasets.load_mni152_template,
        "gm": datasets.load_mni152_gm_template,
        "wm": datasets.load_mni152_wm_template,
        "mask": datasets.load_mni152_brain_mask,
    }
    volumes = {}
    for name, load in loaders.items():
        data = np.asarray(load(resolution=1).get_fdata(), dtype=np.float32)
        data.setflags(write=False)
        volumes[name] = data
    return volumes


def _axial(volume: Volume, z: int) -> np.ndarray:
    """Axial slice, anterior at the top, patient left on the image right (radiological)."""
    return np.ascontiguousarray(volume[:, ::-1, z].T)


def _coronal(volume: Volume, y: int) -> np.ndarray:
    """Coronal slice, superior at the top."""
    return np.ascontiguousarray(volume[:, y, ::-1].T)


def _sagittal(volume: Volume, x: int) -> np.ndarray:
    """Sagittal slice, superior at the top, anterior on the left."""
    return np.ascontiguousarray(volume[x, ::-1, ::-1].T)


def _fit(image: np.ndarray, size: int, zoom: float = 1.0) -> np.ndarray:
    """Centre ``image`` on a square canvas, scale it so the canvas is ``size`` pixels (times
    ``zoom``), and crop or pad to ``size`` x ``size``."""
    side = max(image.shape)
    canvas = np.zeros((side, side), dtype=np.float32)
    top, left = (side - image.shape[0]) // 2, (side - image.shape[1]) // 2
    canvas[top : top + image.shape[0], left : left + image.shape[1]] = image
    scaled = ndimage.zoom(canvas, size * zoom / side, order=1, prefilter=False)
    out = np.zeros((size, size), dtype=np.float32)
    h, w = scaled.shape
    # centre crop or centre pad, independently per axis
    src_r, dst_r = _centre_overlap(h, size)
    src_c, dst_c = _centre_overlap(w, size)
    out[dst_r, dst_c] = scaled[src_r, src_c]
    return np.clip(out, 0.0, None)


def _centre_overlap(n_src: int, n_dst: int) -> tuple[slice, slice]:
    n = min(n_src, n_dst)
    a, b = (n_src - n) // 2, (n_dst - n) // 2
    return slice(a, a + n), slice(b, b + n)


def demo_volume(
    index: int,
    rng: np.random.Generator,
    n_slices: int = 12,
    size: int = IMAGE_SIZE,
    volumes: dict[str, Volume] | None = None,
) -> np.ndarray:
    """Magnitude images of one demo case: contiguous axial slices from ``DEMO_Z``.

    Parameters
    ----------
    index
        Case number; picks the position of the slab within ``DEMO_Z``.
    rng
        Draws a left-right flip and a small gamma change (0.9-1.1) per case.
    n_slices
        Number of slices (at most ``len(DEMO_Z)``).
    size
        Image height and width in pixels.
    volumes
        The template volumes (default: :func:`template_volumes`); tests pass marked copies.

    Returns
    -------
    numpy.ndarray
        float32 ``(n_slices, size, size)``, peak about 1.
    """
    t1 = (template_volumes() if volumes is None else volumes)["t1"]
    return _axial_stack(t1, DEMO_Z, index, rng, n_slices, size)


def heldout_volume(
    index: int,
    rng: np.random.Generator,
    n_slices: int = 8,
    size: int = IMAGE_SIZE,
    volumes: dict[str, Volume] | None = None,
) -> np.ndarray:
    """Magnitude images of one held-out evaluation case: axial slices from ``HELDOUT_Z``.

    Parameters are as for :func:`demo_volume`.
    """
    t1 = (template_volumes() if volumes is None else volumes)["t1"]
    return _axial_stack(t1, HELDOUT_Z, index, rng, n_slices, size)


def _axial_stack(
    t1: Volume, zs: range, index: int, rng: np.random.Generator, n_slices: int, size: int
) -> np.ndarray:
    if not 1 <= n_slices <= len(zs):
        raise ValueError(f"n_slices must be between 1 and {len(zs)}, got {n_slices}")
    n_starts = len(zs) - n_slices + 1
    start = zs.start + (index * 5) % n_starts
    flip = bool(rng.integers(2))
    gamma = float(rng.uniform(0.9, 1.1))
    images = np.stack([_fit(_axial(t1, z), size) for z in range(start, start + n_slices)])
    if flip:
        images = images[:, :, ::-1]
    return np.ascontiguousarray(images**gamma, dtype=np.float32)


def training_volume(
    index: int,
    rng: np.random.Generator,
    n_slices: int = 4,
    size: int = IMAGE_SIZE,
    volumes: dict[str, Volume] | None = None,
) -> np.ndarray:
    """Magnitude images of one augmented training case, built only from ``TRAINING_Z`` voxels.

    Parameters
    ----------
    index
        Case number (only for the caller's bookkeeping; all variation comes from ``rng``).
    rng
        Draws the orientation, position, augmentations and contrast.
    n_slices
        Number of neighbouring slices.
    size
        Image height and width in pixels.
    volumes
        The template volumes (default: :func:`template_volumes`); tests pass marked copies.

    Returns
    -------
    numpy.ndarray
        float32 ``(n_slices, size, size)``, peak about 1.
    """
    del index
    vols = template_volumes() if volumes is None else volumes
    slab_range = TRAINING_Z[int(rng.integers(len(TRAINING_Z)))]
    zs = slice(slab_range.start, slab_range.stop)
    contrast = _contrast(vols, zs, rng)  # (x, y, z) of this training slab only
    orientation = rng.choice(["axial", "coronal", "sagittal"], p=[0.4, 0.3, 0.3])
    cut: Callable[[np.ndarray, int], np.ndarray]
    if orientation == "axial":
        # axial slices with brain in them: 20..65 and 126..150 in template z
        lo, hi = (20, 66) if slab_range.start == 0 else (0, 150 - slab_range.start)
        cut, n_positions = _axial, hi - lo
        offset = lo
    elif orientation == "coronal":
        lo, hi = 40, 200
        cut, n_positions, offset = _coronal, hi - lo, lo
    else:
        lo, hi = 40, 160
        cut, n_positions, offset = _sagittal, hi - lo, lo
    step = int(rng.integers(1, 3))
    first = offset + int(rng.integers(0, max(1, n_positions - step * n_slices)))
    positions = [min(first + i * step, offset + n_positions - 1) for i in range(n_slices)]
    zoom = float(rng.uniform(0.8, 1.25)) * (1.3 if orientation != "axial" else 1.0)
    images = np.stack([_fit(cut(contrast, p), size, zoom) for p in positions])
    return _augment(images, rng)


def _contrast(vols: dict[str, Volume], zs: slice, rng: np.random.Generator) -> np.ndarray:
    """The T1 template or a synthetic contrast mixed from grey matter, white matter and CSF."""
    t1 = vols["t1"][:, :, zs]
    if rng.random() < 0.5:
        return t1
    gm, wm, mask = vols["gm"][:, :, zs], vols["wm"][:, :, zs], vols["mask"][:, :, zs]
    csf = np.clip(mask - gm - wm, 0.0, 1.0)
    weights = rng.uniform(0.1, 1.0, size=3)
    mixed = weights[0] * gm + weights[1] * wm + weights[2] * csf
    # keep a little of the T1 texture so edges stay realistic
    return np.asarray(0.8 * mixed / max(float(weights.max()), 1e-6) + 0.2 * t1, dtype=np.float32)


def _augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flips, 90-degree rotations, gamma, smooth bias field and random blobs (same per volume)."""
    if rng.random() < 0.5:
        images = images[:, :, ::-1]
    if rng.random() < 0.5:
        images = images[:, ::-1, :]
    images = np.rot90(images, k=int(rng.integers(4)), axes=(1, 2))
    size = images.shape[-1]
    yy, xx = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    bias = 1.0 + sum(float(rng.uniform(-0.15, 0.15)) * t for t in (xx, yy, xx * yy, xx**2 - yy**2))
    blobs = np.zeros((size, size), dtype=np.float32)
    brain = images.max(axis=0) > 0.05
    for _ in range(int(rng.integers(0, 4))):
        cy, cx = rng.uniform(-0.7, 0.7, size=2)
        ry, rx = rng.uniform(0.03, 0.15, size=2)
        blobs += float(rng.uniform(-0.4, 0.4)) * np.exp(
            -(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
        ).astype(np.float32)
    gamma = float(rng.uniform(0.7, 1.4))
    out = np.clip(images, 0.0, None) ** gamma * bias + blobs * brain
    out = np.clip(out, 0.0, None)
    peak = float(out.max())
    return np.ascontiguousarray(out / peak if peak > 0 else out, dtype=np.float32)


def coil_sensitivities(
    n_coils: int, shape: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """Smooth complex receive sensitivities of coils spaced around the field of view.

    Each coil sits on an ellipse outside the object (random rotation of the array, jittered
    positions); its magnitude falls off as ``1 / (1 + (d / r)^2)`` with distance ``d`` and
    its phase is a random constant plus a gentle linear ramp.

    Parameters
    ----------
    n_coils
        Number of coils.
    shape
        ``(H, W)`` of the grid (the oversampled one for k-space simulation).
    rng
        Random generator.

    Returns
    -------
    numpy.ndarray
        complex64 ``(n_coils, H, W)``, normalised so the root sum of squares peaks at 1.
    """
    h, w = shape
    # coordinates in units of half the image width (square pixels): the object spans [-1, 1]
    # across; with read-out oversampling the grid spans [-2, 2] down
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy = (yy - (h - 1) / 2) / (w / 2)
    xx = (xx - (w - 1) / 2) / (w / 2)
    rotation = rng.uniform(0, 2 * math.pi)
    maps = np.empty((n_coils, h, w), dtype=np.complex64)
    for c in range(n_coils):
        angle = rotation + 2 * math.pi * c / n_coils + rng.normal(0, 0.1)
        radius = 1.2 + rng.uniform(-0.1, 0.1)
        cy, cx = radius * math.sin(angle), radius * math.cos(angle)
        dist2 = (yy - cy) ** 2 + (xx - cx) ** 2
        magnitude = 1.0 / (1.0 + dist2 / rng.uniform(0.5, 0.9) ** 2)
        phase = rng.uniform(-math.pi, math.pi) + rng.normal(0, 0.5) * xx + rng.normal(0, 0.5) * yy
        maps[c] = magnitude * np.exp(1j * phase)
    rss = np.sqrt((np.abs(maps) ** 2).sum(axis=0))
    return (maps / rss.max()).astype(np.complex64)


def smooth_phase(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A smooth background phase (low-order polynomial, up to about +-pi) in radians.

    Parameters
    ----------
    shape
        ``(H, W)``.
    rng
        Random generator.

    Returns
    -------
    numpy.ndarray
        float32 ``(H, W)``.
    """
    h, w = shape
    yy, xx = np.mgrid[-1 : 1 : h * 1j, -1 : 1 : w * 1j]
    terms = (np.ones_like(xx), xx, yy, xx * yy, xx**2, yy**2)
    coefficients = rng.normal(0, [1.0, 0.8, 0.8, 0.4, 0.4, 0.4])
    return np.asarray(sum(c * t for c, t in zip(coefficients, terms, strict=True)), np.float32)


def simulate_kspace(
    images: np.ndarray,
    n_coils: int,
    rng: np.random.Generator,
    noise_std: float = NOISE_STD,
    oversampling: int = 2,
) -> np.ndarray:
    """Multi-coil k-space of magnitude images in fastMRI's layout.

    Each image is placed in the centre of a grid twice as tall (read-out oversampling),
    multiplied by a smooth phase (one per slice) and by coil sensitivities (one set per volume,
    as coils do not move between slices), and transformed with the centred orthonormal FFT.

    Parameters
    ----------
    images
        float ``(slices, H, W)`` magnitudes (peak about 1).
    n_coils
        Number of receive coils.
    rng
        Random generator for the coils, phases and noise.
    noise_std
        Standard deviation of the real and of the imaginary part of the white noise added to
        each k-space sample (under the orthonormal FFT this is also the per-pixel image noise).
    oversampling
        Read-out oversampling: 2 (the grid is ``2H`` tall, as fastMRI's) or 1 (no margin).

    Returns
    -------
    numpy.ndarray
        complex64 ``(slices, n_coils, oversampling * H, W)``.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3:
        raise ValueError(f"images must be (slices, H, W), got shape {images.shape}")
    if oversampling not in (1, 2):
        raise ValueError(f"oversampling must be 1 or 2, got {oversampling}")
    n_slices, h, w = images.shape
    full = (oversampling * h, w)
    maps = coil_sensitivities(n_coils, full, rng)
    padded = np.zeros((n_slices, *full), dtype=np.complex64)
    top = (full[0] - h) // 2
    padded[:, top : top + h] = images
    for s in range(n_slices):
        padded[s] *= np.exp(1j * smooth_phase(full, rng)).astype(np.complex64)
    coil_images = torch.from_numpy(padded[:, None] * maps[None])
    kspace = fft2c(coil_images).numpy()
    noise = rng.normal(0.0, noise_std, size=(2, *kspace.shape)).astype(np.float32)
    return (kspace + (noise[0] + 1j * noise[1])).astype(np.complex64)
