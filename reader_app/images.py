"""DICOM series to float32 volumes, automatic windows and the slice-to-8-bit mapping.

Pure numpy + pydicom (no Qt), so the prefetch worker and the benchmarks can use it directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from reader_app.errors import ImageDecodeError

#: Percentile pairs (low, high) of the pair's pixel values for the window presets (keys F1..F3).
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "auto": (1.0, 99.0),
    "contrast": (5.0, 95.0),
    "wide": (0.1, 99.9),
}
#: At most this many pixels are sampled per volume when computing percentiles.
_PERCENTILE_SAMPLE = 400_000


@dataclass(frozen=True)
class WindowLevel:
    """A display window: values ``center - width/2 .. center + width/2`` map to black..white."""

    center: float
    width: float

    @property
    def low(self) -> float:
        """The value shown black."""
        return self.center - self.width / 2.0

    @property
    def high(self) -> float:
        """The value shown white."""
        return self.center + self.width / 2.0

    @classmethod
    def from_range(cls, low: float, high: float) -> WindowLevel:
        """The window spanning ``low..high`` (a zero range becomes a width of 1)."""
        width = max(float(high) - float(low), 1e-6)
        return cls(center=(float(high) + float(low)) / 2.0, width=width)


def read_slice(path: Path) -> np.ndarray:
    """Read one DICOM image as float32 with RescaleSlope / RescaleIntercept applied.

    Parameters
    ----------
    path : Path
        A DICOM file holding one 2-D greyscale image.

    Returns
    -------
    numpy.ndarray
        ``(rows, columns)`` float32 array in the modality's units.

    Raises
    ------
    ImageDecodeError
        The file is missing, not DICOM, has no pixel data or is not a 2-D greyscale image.
    """
    try:
        dataset = pydicom.dcmread(path)
        pixels = dataset.pixel_array
    except FileNotFoundError as exc:
        raise ImageDecodeError("an image file is missing", f"{path}: {exc}") from exc
    except InvalidDicomError as exc:
        raise ImageDecodeError("an image file is not DICOM", f"{path}: {exc}") from exc
    except (AttributeError, KeyError) as exc:
        raise ImageDecodeError("an image file has no pixel data", f"{path}: {exc!r}") from exc
    except Exception as exc:  # pydicom raises many kinds for corrupt data; all are unreadable
        raise ImageDecodeError("an image file could not be decoded", f"{path}: {exc!r}") from exc
    if pixels.ndim != 2:
        raise ImageDecodeError(
            "an image file is not a single greyscale slice",
            f"{path}: pixel array shape {pixels.shape}, expected (rows, columns)",
        )
    slope = float(getattr(dataset, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(dataset, "RescaleIntercept", 0.0) or 0.0)
    image = pixels.astype(np.float32)
    if slope != 1.0:
        image *= np.float32(slope)
    if intercept != 0.0:
        image += np.float32(intercept)
    return image


def read_series(files: Sequence[Path]) -> np.ndarray:
    """Read a DICOM series (files in slice order) into a ``(slices, rows, columns)`` volume.

    Raises
    ------
    ImageDecodeError
        No files, an unreadable file, or slices of different sizes.
    """
    if not files:
        raise ImageDecodeError("a series has no images", "empty file list")
    slices = [read_slice(Path(f)) for f in files]
    shape = slices[0].shape
    for index, image in enumerate(slices):
        if image.shape != shape:
            raise ImageDecodeError(
                f"slice {index + 1} has a different size from slice 1",
                f"{files[index]}: shape {image.shape}, expected {shape}",
            )
    return np.stack(slices).astype(np.float32, copy=False)


def _sample(volume: np.ndarray) -> np.ndarray:
    flat = volume.reshape(-1)
    step = max(1, flat.size // _PERCENTILE_SAMPLE)
    return flat[::step]


def window_from_percentiles(volumes: Sequence[np.ndarray], low: float, high: float) -> WindowLevel:
    """The window spanning the ``low``..``high`` percentiles of all volumes together.

    In the paired design both panes get this same window, so neither arm looks brighter by
    construction.
    """
    if not volumes:
        return WindowLevel(center=0.5, width=1.0)
    values = np.concatenate([_sample(v) for v in volumes])
    lo, hi = np.percentile(values, [low, high])
    return WindowLevel.from_range(float(lo), float(hi))


def auto_window(volumes: Sequence[np.ndarray]) -> WindowLevel:
    """The automatic window (1st..99th percentile of the pair)."""
    low, high = WINDOW_PRESETS["auto"]
    return window_from_percentiles(volumes, low, high)


def window_presets(volumes: Sequence[np.ndarray]) -> dict[str, WindowLevel]:
    """Every preset of :data:`WINDOW_PRESETS` computed on ``volumes``."""
    if not volumes:
        return {name: WindowLevel(0.5, 1.0) for name in WINDOW_PRESETS}
    values = np.concatenate([_sample(v) for v in volumes])
    names = list(WINDOW_PRESETS)
    qs = [q for name in names for q in WINDOW_PRESETS[name]]
    found = np.percentile(values, qs)
    return {
        name: WindowLevel.from_range(float(found[2 * i]), float(found[2 * i + 1]))
        for i, name in enumerate(names)
    }


def to_uint8(image: np.ndarray, window: WindowLevel, out: np.ndarray | None = None) -> np.ndarray:
    """Map a 2-D float image through ``window`` to 8-bit grey (C-contiguous).

    Parameters
    ----------
    image : numpy.ndarray
        2-D float32 slice.
    window : WindowLevel
        The display window.
    out : numpy.ndarray, optional
        float32 scratch buffer of the same shape (saves an allocation per slice change).
    """
    scratch = out if out is not None and out.shape == image.shape else np.empty_like(image)
    np.subtract(image, np.float32(window.low), out=scratch)
    np.multiply(scratch, np.float32(255.0 / window.width), out=scratch)
    np.clip(scratch, 0.0, 255.0, out=scratch)
    return np.ascontiguousarray(scratch.astype(np.uint8))


@dataclass(frozen=True)
class CaseImages:
    """The decoded volumes of one assignment (one per side) and its shared windows."""

    assignment_id: str
    volumes: tuple[np.ndarray, ...]
    window: WindowLevel
    presets: dict[str, WindowLevel]

    @property
    def nbytes(self) -> int:
        """Memory held by the volumes."""
        return sum(int(v.nbytes) for v in self.volumes)


def load_case(assignment_id: str, sides: Sequence[Sequence[Path]]) -> CaseImages:
    """Decode every side of an assignment and compute the shared automatic window and presets."""
    volumes = tuple(read_series(files) for files in sides)
    presets = window_presets(volumes)
    return CaseImages(
        assignment_id=assignment_id, volumes=volumes, window=presets["auto"], presets=presets
    )
