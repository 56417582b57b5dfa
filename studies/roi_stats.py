"""What an ROI or a ruler measures on one image: the one function the viewer, the store and the
exports share (numpy only).

Image coordinates are DICOM's (PS3.3 C.18.6.1.1): ``x`` runs along the columns, ``y`` down the
rows, and ``(0, 0)`` is the top-left corner of the top-left pixel, so pixel (row ``r``, column
``c``) covers ``c <= x < c + 1``, ``r <= y < r + 1`` and its centre is ``(c + 0.5, r + 0.5)``.
A pixel belongs to an ROI when its centre lies inside the shape (on the boundary counts as
inside for an ellipse; a polygon uses the even-odd rule).

Shapes and their points:

- ``ellipse``: two opposite corners of the ellipse's axis-aligned bounding box;
- ``freehand``: the polygon's vertices (at least 3; closed implicitly);
- ``line`` (a ruler): its two end points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from studies.errors import StudyError

#: The shapes a stored measurement can have.
SHAPES = ("ellipse", "freehand", "line")
#: At most this many vertices in a freehand ROI (a traced outline is thinned by the viewer).
MAX_VERTICES = 2000

Points = Sequence[Sequence[float]]


@dataclass(frozen=True)
class RoiValues:
    """What a shape measures. ROI: mean, SD (sample, n - 1), area and pixel count; ruler:
    length. ``area_mm2`` / ``length_mm`` are None when the image has no PixelSpacing."""

    mean: float | None = None
    sd: float | None = None
    area_mm2: float | None = None
    n_pixels: int | None = None
    length_mm: float | None = None

    def as_dict(self) -> dict[str, float | int | None]:
        """The values as stored with the answer."""
        return {
            "mean": self.mean,
            "sd": self.sd,
            "area_mm2": self.area_mm2,
            "n_pixels": self.n_pixels,
            "length_mm": self.length_mm,
        }


def check_points(shape: str, points: Points) -> list[list[float]]:
    """The points as ``[[x, y], ...]`` floats, checked for the shape.

    Raises
    ------
    StudyError
        An unknown shape, the wrong number of points, or a coordinate that is not a finite number.
    """
    if shape not in SHAPES:
        raise StudyError(f"unknown shape {shape!r} (expected one of {', '.join(SHAPES)})")
    out: list[list[float]] = []
    for point in points:
        if len(point) != 2:
            raise StudyError(f"a point is [x, y], got {list(point)!r}")
        x, y = point
        for v in (x, y):
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise StudyError(
                    f"a point's coordinates must be finite numbers, got {list(point)!r}"
                )
        out.append([float(x), float(y)])
    if shape in ("ellipse", "line") and len(out) != 2:
        raise StudyError(
            f"{'an' if shape == 'ellipse' else 'a'} {shape} has 2 points, got {len(out)}"
        )
    if shape == "freehand" and not 3 <= len(out) <= MAX_VERTICES:
        raise StudyError(f"a freehand ROI has 3..{MAX_VERTICES} points, got {len(out)}")
    return out


def roi_mask(shape: str, points: Points, image_shape: tuple[int, int]) -> np.ndarray:
    """The pixels (``(rows, columns)`` bool) whose centres lie inside an ellipse or polygon."""
    rows, cols = image_shape
    pts = np.asarray(check_points(shape, points), dtype=np.float64)
    mask = np.zeros((rows, cols), dtype=bool)
    if shape == "line":
        raise StudyError("a ruler has no area")
    lo = np.floor(pts.min(axis=0)).astype(int)
    hi = np.ceil(pts.max(axis=0)).astype(int)
    c0, r0 = max(lo[0], 0), max(lo[1], 0)
    c1, r1 = min(hi[0], cols), min(hi[1], rows)
    if c1 <= c0 or r1 <= r0:
        return mask
    yy, xx = np.mgrid[r0:r1, c0:c1]
    x = xx + 0.5
    y = yy + 0.5
    if shape == "ellipse":
        (xa, ya), (xb, yb) = pts
        cx, cy = (xa + xb) / 2.0, (ya + yb) / 2.0
        a, b = abs(xb - xa) / 2.0, abs(yb - ya) / 2.0
        if a == 0 or b == 0:
            return mask
        inside = ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 <= 1.0
    else:
        inside = np.zeros(x.shape, dtype=bool)
        n = len(pts)
        for i in range(n):
            (xi, yi), (xj, yj) = pts[i], pts[i - 1]
            if yi == yj:
                continue
            crosses = (yi > y) != (yj > y)
            at = (xj - xi) * (y - yi) / (yj - yi) + xi
            inside ^= crosses & (x < at)
    mask[r0:r1, c0:c1] = inside
    return mask


def measure(
    pixels: np.ndarray,
    shape: str,
    points: Points,
    pixel_spacing: tuple[float, float] | None,
) -> RoiValues:
    """Measure a shape on one image.

    Parameters
    ----------
    pixels
        The slice, ``(rows, columns)``, in the modality's units (rescale applied).
    shape, points
        See the module docstring.
    pixel_spacing
        (row spacing, column spacing) in mm (DICOM PixelSpacing), or None.

    Returns
    -------
    RoiValues
        ROI: mean, SD (ddof 1), area = pixels inside x row spacing x column spacing, n_pixels;
        ruler: the length in mm.

    Raises
    ------
    StudyError
        Bad points, points outside the image, or an ROI with fewer than 2 pixels inside.
    """
    pts = check_points(shape, points)
    rows, cols = pixels.shape
    for x, y in pts:
        if not (0.0 <= x <= cols and 0.0 <= y <= rows):
            raise StudyError(
                f"point [{x:g}, {y:g}] is outside the image (0..{cols} x 0..{rows} pixels)"
            )
    if shape == "line":
        (xa, ya), (xb, yb) = pts
        if pixel_spacing is None:
            return RoiValues()
        dy, dx = pixel_spacing
        return RoiValues(length_mm=float(math.hypot((xb - xa) * dx, (yb - ya) * dy)))
    mask = roi_mask(shape, pts, (rows, cols))
    values = np.asarray(pixels, dtype=np.float64)[mask]
    n = int(values.size)
    if n < 2:
        raise StudyError(f"the {shape} ROI holds {n} pixel(s): draw it over at least 2 pixels")
    area = None if pixel_spacing is None else n * pixel_spacing[0] * pixel_spacing[1]
    return RoiValues(
        mean=float(values.mean()),
        sd=float(values.std(ddof=1)),
        area_mm2=None if area is None else float(area),
        n_pixels=n,
    )


__all__ = ["MAX_VERTICES", "SHAPES", "RoiValues", "check_points", "measure", "roi_mask"]
