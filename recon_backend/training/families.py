"""Families of simulated multi-coil k-space for training the demo model and for held-out tests.

A *family* is a way of making fully sampled k-space: an image source (the MNI152 template,
synthetic phantoms, real MR images from pydicom-data), a coil count, a matrix and layout, a noise
level and an intensity scale. The demo VarNet is trained on a mixture of the training families
(:func:`training_slice`, everything drawn at random every step) and judged on held-out families
that it never sees (:data:`HELDOUT_FAMILIES`):

* ``mni-heldout``: axial template slices from ``simulate.HELDOUT_Z`` (no training voxel), 8 coils,
  160 x 160, the demo's own layout;
* ``shepp-logan``: scikit-image's Shepp-Logan phantom (training phantoms are random ellipses,
  rectangles and blobs, never this phantom), 12 coils, 128 x 128, intensities x 1000;
* ``shoulder-knee-layout``: the pydicom-data shoulder MR image ``MR2_UNCI.dcm`` (training uses
  only the pydicom-data abdomen ``MR-SIEMENS-DICOM-WithOverlays.dcm``), 15 coils, fastMRI's knee
  layout: 2x read-out oversampling and zero-padded phase-encode columns, intensities ~1e-4 like
  fastMRI's files.

All randomness comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from recon_backend import simulate

#: pydicom-data files: one for training, one held out (``None`` when pydicom-data is missing).
TRAINING_MR_FILE = "MR-SIEMENS-DICOM-WithOverlays.dcm"
HELDOUT_MR_FILE = "MR2_UNCI.dcm"


@dataclass(frozen=True)
class SimulatedVolume:
    """Fully sampled k-space of one simulated volume and how to crop its images.

    Attributes
    ----------
    kspace
        complex64 ``(slices, coils, H, W)``; columns outside ``padding`` are zero.
    image_size
        Rows and columns of the object's image (the reconSpace matrix).
    padding
        Acquired phase-encode columns ``[left, right)`` (fastMRI's padding convention).
    """

    kspace: np.ndarray
    image_size: tuple[int, int]
    padding: tuple[int, int]


@functools.cache
def pydicom_mr_image(name: str) -> np.ndarray | None:
    """A pydicom-data MR image as float32 in [0, 1], or ``None`` when it is not installed.

    Read from the installed ``pydicom-data`` package (module ``data_store``) directly, so
    nothing is ever downloaded.
    """
    from pydicom import dcmread

    try:
        import data_store  # the pydicom-data package: installed files only, no download
    except ImportError:
        return None
    path = Path(data_store.__file__).parent / "data" / name
    if not path.is_file():
        return None
    pixels = np.asarray(dcmread(path).pixel_array, dtype=np.float32)
    if pixels.ndim == 3:
        pixels = pixels[pixels.shape[0] // 2]
    pixels -= pixels.min()
    peak = float(pixels.max())
    image = pixels / peak if peak > 0 else pixels
    image.setflags(write=False)
    return image


def random_phantom(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random piecewise-smooth phantom: ellipses, rotated rectangles and blobs with texture.

    Parameters
    ----------
    shape
        ``(H, W)`` of the image.
    rng
        Random generator.

    Returns
    -------
    numpy.ndarray
        float32 ``(H, W)`` in [0, 1].
    """
    h, w = shape
    yy, xx = np.mgrid[-1 : 1 : h * 1j, -1 : 1 : w * 1j]
    image = np.zeros(shape, dtype=np.float64)
    # an outer body so the object has a boundary like anatomy
    ry, rx = rng.uniform(0.6, 0.95, size=2)
    body = ((yy / ry) ** 2 + (xx / rx) ** 2) <= 1.0
    image[body] = rng.uniform(0.2, 0.6)
    for _ in range(int(rng.integers(4, 16))):
        cy, cx = rng.uniform(-0.6, 0.6, size=2)
        ay, ax = rng.uniform(0.03, 0.4, size=2)
        angle = rng.uniform(0, math.pi)
        u = (xx - cx) * math.cos(angle) + (yy - cy) * math.sin(angle)
        v = -(xx - cx) * math.sin(angle) + (yy - cy) * math.cos(angle)
        kind = rng.random()
        if kind < 0.55:
            region = (u / ax) ** 2 + (v / ay) ** 2 <= 1.0
        elif kind < 0.85:
            region = (np.abs(u) <= ax) & (np.abs(v) <= ay)
        else:
            blob = np.exp(-((u / ax) ** 2 + (v / ay) ** 2))
            image += rng.uniform(-0.3, 0.5) * blob * body
            continue
        value = rng.uniform(-0.3, 0.6)
        image[region & body] += value
    texture = ndimage.gaussian_filter(rng.standard_normal(shape), rng.uniform(1.0, 4.0))
    image += rng.uniform(0.0, 0.15) * texture / (np.abs(texture).max() + 1e-9) * body
    image = ndimage.gaussian_filter(np.clip(image, 0.0, None), rng.uniform(0.3, 1.0))
    peak = float(image.max())
    return np.asarray(image / peak if peak > 0 else image, dtype=np.float32)


def _crop_augment(
    image: np.ndarray, shape: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """A random crop of ``image`` (zoom, flips, 90-degree turns, gamma) resized to ``shape``."""
    if rng.random() < 0.5:
        image = image[::-1]
    image = np.rot90(image, k=int(rng.integers(4)))
    side = min(image.shape)
    crop = int(side * rng.uniform(0.45, 1.0))
    top = int(rng.integers(0, image.shape[0] - crop + 1))
    left = int(rng.integers(0, image.shape[1] - crop + 1))
    patch = image[top : top + crop, left : left + crop]
    zoom = (shape[0] / patch.shape[0], shape[1] / patch.shape[1])
    resized = ndimage.zoom(np.ascontiguousarray(patch), zoom, order=1, prefilter=False)
    out = np.zeros(shape, dtype=np.float32)
    rows, cols = min(shape[0], resized.shape[0]), min(shape[1], resized.shape[1])
    out[:rows, :cols] = resized[:rows, :cols]
    out = np.clip(out, 0.0, None) ** rng.uniform(0.7, 1.4)
    peak = float(out.max())
    return np.asarray(out / peak if peak > 0 else out, dtype=np.float32)


def simulate_layout(
    images: np.ndarray,
    n_coils: int,
    rng: np.random.Generator,
    *,
    noise_std: float,
    scale: float = 1.0,
    oversampling: int = 2,
    pad_columns: int = 0,
) -> SimulatedVolume:
    """Multi-coil k-space of ``images`` in a fastMRI-like layout.

    Parameters
    ----------
    images
        float ``(slices, H, W)`` magnitudes, peak about 1.
    n_coils
        Receive coils.
    rng
        Random generator (coils, phase, noise).
    noise_std
        Noise standard deviation relative to an image peak of 1.
    scale
        Overall intensity scale (signal and noise alike).
    oversampling
        Read-out oversampling (1 or 2): the k-space has ``oversampling * H`` rows.
    pad_columns
        Zero phase-encode columns added on each side (fastMRI's padding); the image is then
        ``W + 2 * pad_columns`` wide before the crop to ``W``.

    Returns
    -------
    SimulatedVolume
        The k-space with its image size and acquired columns.
    """
    h, w = images.shape[1:]
    kspace = simulate.simulate_kspace(
        images, n_coils, rng, noise_std=noise_std, oversampling=oversampling
    )
    if pad_columns:
        padded = np.zeros((*kspace.shape[:3], w + 2 * pad_columns), dtype=np.complex64)
        padded[..., pad_columns : pad_columns + w] = kspace
        kspace = padded
    kspace = (kspace * np.float32(scale)).astype(np.complex64)
    return SimulatedVolume(kspace, (h, w), (pad_columns, pad_columns + w))


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


#: Training image sources and their probabilities (the pydicom-data abdomen only when installed).
TRAINING_SOURCES = {"mni": 0.5, "phantom": 0.3, "pydicom-abdomen": 0.2}


def training_slice(rng: np.random.Generator, max_size: int = 96) -> SimulatedVolume:
    """One training slice from a random training family, with every setting drawn at random.

    The source is the MNI template's training slabs (:func:`simulate.training_volume`, any
    orientation, augmented), a random phantom, or crops of the pydicom-data abdomen image; the
    matrix has 64 to ``max_size`` rows and an aspect ratio of 0.75-1.25; 4 to 32 coils
    (log-uniform); noise
    0.0005-0.02 of the peak; intensity scale 1e-6 to 1e3; 2x read-out oversampling (75 %) or
    none; zero-padded phase-encode columns in 30 % of slices.
    """
    sources = dict(TRAINING_SOURCES)
    abdomen = pydicom_mr_image(TRAINING_MR_FILE)
    if abdomen is None:
        sources.pop("pydicom-abdomen")
    names = list(sources)
    weights = np.array([sources[n] for n in names])
    source = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    rows = 2 * int(rng.integers(32, max_size // 2 + 1))
    cols = max(48, 2 * round(rows * rng.uniform(0.75, 1.25) / 2))
    if source == "mni":
        square = simulate.training_volume(0, rng, n_slices=1, size=max(rows, cols))[0]
        image = _centre(square, (rows, cols))
    elif source == "phantom":
        image = random_phantom((rows, cols), rng)
    else:
        assert abdomen is not None
        image = _crop_augment(abdomen, (rows, cols), rng)
    n_coils = round(_log_uniform(rng, 4, 32))  # log-uniform: small arrays as often as large
    pad = int(rng.integers(2, max(3, cols // 8))) if rng.random() < 0.3 else 0
    return simulate_layout(
        image[None],
        n_coils,
        rng,
        noise_std=_log_uniform(rng, 5e-4, 2e-2),
        scale=_log_uniform(rng, 1e-6, 1e3),
        oversampling=2 if rng.random() < 0.75 else 1,
        pad_columns=pad,
    )


def _centre(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    top = (image.shape[0] - shape[0]) // 2
    left = (image.shape[1] - shape[1]) // 2
    return np.ascontiguousarray(image[top : top + shape[0], left : left + shape[1]])


def _mni_heldout(rng: np.random.Generator, index: int, n_slices: int) -> SimulatedVolume | None:
    images = simulate.heldout_volume(index, rng, n_slices, 160)
    return simulate_layout(images, 8, rng, noise_std=0.002)


def _shepp_logan(rng: np.random.Generator, index: int, n_slices: int) -> SimulatedVolume | None:
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    base = resize(shepp_logan_phantom(), (128, 128), anti_aliasing=True).astype(np.float32)
    images = []
    for s in range(n_slices):
        shifted = ndimage.shift(base, (rng.uniform(-4, 4), rng.uniform(-4, 4)), order=1)
        images.append(np.clip(shifted * (1.0 + 0.05 * (s - index)), 0.0, None))
    stack = np.asarray(images, dtype=np.float32)
    return simulate_layout(stack / stack.max(), 12, rng, noise_std=0.004, scale=1e3)


def _shoulder(rng: np.random.Generator, index: int, n_slices: int) -> SimulatedVolume | None:
    shoulder = pydicom_mr_image(HELDOUT_MR_FILE)
    if shoulder is None:
        return None
    size = 160
    images = []
    for _ in range(n_slices):
        crop = int(shoulder.shape[0] * rng.uniform(0.55, 0.8))
        top = int(rng.integers(0, shoulder.shape[0] - crop + 1))
        left = int(rng.integers(0, shoulder.shape[1] - crop + 1))
        patch = shoulder[top : top + crop, left : left + crop]
        images.append(ndimage.zoom(patch, size / crop, order=1, prefilter=False)[:size, :size])
    stack = np.clip(np.asarray(images, dtype=np.float32), 0.0, None)
    del index
    # fastMRI knee layout: 640 x 368 for a 320 x 320 image, here halved: 320 x 184 for 160 x 160
    return simulate_layout(
        stack / stack.max(), 15, rng, noise_std=0.003, scale=1e-4, pad_columns=12
    )


#: Held-out families: name -> (description, maker(rng, index, n_slices) -> volume or None).
HELDOUT_FAMILIES: dict[
    str, tuple[str, Callable[[np.random.Generator, int, int], SimulatedVolume | None]]
] = {
    "mni-heldout": (
        "MNI152 axial slices z in [104, 120) (never in training), 8 coils, 320 x 160 k-space",
        _mni_heldout,
    ),
    "shepp-logan": (
        "scikit-image Shepp-Logan phantom (never in training), 12 coils, 256 x 128 k-space, "
        "intensities x 1000",
        _shepp_logan,
    ),
    "shoulder-knee-layout": (
        "pydicom-data shoulder MR2_UNCI.dcm (never in training), 15 coils, fastMRI knee layout "
        "halved: 320 x 184 k-space with 12 zero-padded columns each side, intensities ~1e-4",
        _shoulder,
    ),
}
