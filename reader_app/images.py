"""DICOM series to float32 volumes, automatic windows and the slice-to-8-bit mapping.

Pure numpy + pydicom (no Qt), so the prefetch worker and the benchmarks can use it directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from reader_app.errors import ImageDecodeError
from studies.api import SideImages
from studies.protocol import DEFAULT_WINDOW_PRESETS, WindowPreset

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


def window_presets(
    volumes: Sequence[np.ndarray], presets: Sequence[WindowPreset] = DEFAULT_WINDOW_PRESETS
) -> dict[str, WindowLevel]:
    """The named presets (percentile pairs of the protocol) computed on ``volumes``, in order.

    The first preset is the automatic window a series opens with.
    """
    if not volumes:
        return {p.name: WindowLevel(0.5, 1.0) for p in presets}
    values = np.concatenate([_sample(v) for v in volumes])
    found = np.percentile(values, [q for p in presets for q in (p.low, p.high)])
    return {
        p.name: WindowLevel.from_range(float(found[2 * i]), float(found[2 * i + 1]))
        for i, p in enumerate(presets)
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
class Geometry:
    """How a series' pixels lie in the patient: spacing (mm) and orientation.

    ``row_spacing`` is the distance between rows (vertical), ``column_spacing`` between columns
    (horizontal), from PixelSpacing (1 mm each when it is missing: square pixels).
    ``row_direction`` / ``column_direction`` are ImageOrientationPatient's two triples (None
    when it is missing: no orientation letters).
    """

    row_spacing: float = 1.0
    column_spacing: float = 1.0
    row_direction: tuple[float, float, float] | None = None
    column_direction: tuple[float, float, float] | None = None


def read_geometry(path: Path) -> Geometry:
    """The geometry of a series from one of its files (PixelSpacing, ImageOrientationPatient).

    A missing or unusable value falls back to square pixels / no orientation; the image is
    still shown.
    """
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as exc:
        raise ImageDecodeError("an image file could not be decoded", f"{path}: {exc!r}") from exc
    row_spacing = column_spacing = 1.0
    spacing = getattr(ds, "PixelSpacing", None)
    try:
        if spacing is not None and len(spacing) == 2:
            r, c = float(spacing[0]), float(spacing[1])
            if np.isfinite(r) and np.isfinite(c) and r > 0 and c > 0:
                row_spacing, column_spacing = r, c
    except (TypeError, ValueError):
        pass
    row_direction = column_direction = None
    orientation = getattr(ds, "ImageOrientationPatient", None)
    try:
        if orientation is not None and len(orientation) == 6:
            values = [float(v) for v in orientation]
            if all(np.isfinite(values)) and any(values[:3]) and any(values[3:]):
                row_direction = (values[0], values[1], values[2])
                column_direction = (values[3], values[4], values[5])
    except (TypeError, ValueError):
        pass
    return Geometry(row_spacing, column_spacing, row_direction, column_direction)


#: Thumbnails are at most this many pixels on their longer side.
THUMBNAIL_SIZE = 96


def thumbnail(volume: np.ndarray, window: WindowLevel) -> np.ndarray:
    """The middle slice, shrunk by whole-pixel striding to at most :data:`THUMBNAIL_SIZE`."""
    image = volume[volume.shape[0] // 2]
    step = max(1, -(-max(image.shape) // THUMBNAIL_SIZE))
    return to_uint8(np.ascontiguousarray(image[::step, ::step]), window)


@dataclass(frozen=True)
class SeriesVolumes:
    """One series of a case, decoded: one volume and geometry per side, the shared windows.

    ``presets`` holds the protocol's named windows computed on both sides together (the paired
    design's two arms get one window); the first is the automatic window it opens with.
    """

    label: str
    volumes: tuple[np.ndarray, ...]
    geometries: tuple[Geometry, ...]
    presets: dict[str, WindowLevel]
    thumbnail: np.ndarray = field(repr=False)

    @property
    def window(self) -> WindowLevel:
        """The automatic window (the first preset)."""
        return next(iter(self.presets.values()))

    @property
    def n_slices(self) -> int:
        """Slices shown (the fewest of the sides)."""
        return min(v.shape[0] for v in self.volumes)

    @property
    def nbytes(self) -> int:
        """Memory held by the volumes."""
        return sum(int(v.nbytes) for v in self.volumes) + int(self.thumbnail.nbytes)


@dataclass(frozen=True)
class CaseImages:
    """The decoded series of one assignment, in hanging order."""

    assignment_id: str
    series: tuple[SeriesVolumes, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        """The series labels in hanging order."""
        return tuple(s.label for s in self.series)

    def get(self, label: str) -> SeriesVolumes:
        """The series with this label (KeyError if there is none)."""
        for series in self.series:
            if series.label == label:
                return series
        raise KeyError(label)

    @property
    def nbytes(self) -> int:
        """Memory held by the volumes."""
        return sum(s.nbytes for s in self.series)


def load_series(
    label: str, sides: Sequence[Sequence[Path]], presets: Sequence[WindowPreset]
) -> SeriesVolumes:
    """Decode one series on every side and compute its shared presets and thumbnail."""
    volumes = tuple(read_series(files) for files in sides)
    geometries = tuple(read_geometry(Path(files[0])) for files in sides)
    windows = window_presets(volumes, presets)
    return SeriesVolumes(
        label=label,
        volumes=volumes,
        geometries=geometries,
        presets=windows,
        thumbnail=thumbnail(volumes[0], next(iter(windows.values()))),
    )


def load_case(
    assignment_id: str,
    sides: Sequence[SideImages],
    presets: Sequence[WindowPreset] = DEFAULT_WINDOW_PRESETS,
) -> CaseImages:
    """Decode every series of every side of an assignment (the same labels on each side).

    Raises
    ------
    ImageDecodeError
        A file cannot be decoded, or the sides do not show the same series.
    """
    labels = sides[0].labels if sides else ()
    for side in sides[1:]:
        if side.labels != labels:
            raise ImageDecodeError(
                "the two sides do not show the same series",
                f"{assignment_id}: {side.labels} against {labels}",
            )
    return CaseImages(
        assignment_id=assignment_id,
        series=tuple(
            load_series(label, [side.get(label).files for side in sides], presets)
            for label in labels
        ),
    )
