"""Shapes the reader draws (ellipse, freehand, ruler) as plain geometry: a default shape, moving,
scaling, dragging a handle and clamping to the image. Pure Python (no Qt); what a shape measures
is computed by the store (``studies.roi_stats``), never here.

Points are image coordinates ``[x, y]`` (``x`` along the columns, pixel ``c`` covers
``c <= x < c + 1``), the store's convention.
"""

from __future__ import annotations

import math
from typing import Any

from studies.roi_stats import MAX_VERTICES

Points = list[list[float]]

#: A freehand outline keeps a vertex once the pointer moved this many image pixels.
FREEHAND_STEP = 1.0
#: Keyboard moves by this many image pixels; ``,`` / ``.`` scale by this factor.
KEY_STEP = 1.0
SCALE_STEP = 1.1


__all__ = ["MAX_VERTICES"]


def clamp(points: Points, columns: int, rows: int) -> Points:
    """Points moved inside the image ``0..columns x 0..rows``."""
    return [[min(max(x, 0.0), float(columns)), min(max(y, 0.0), float(rows))] for x, y in points]


def default_shape(shape: str, columns: int, rows: int, centre: tuple[float, float]) -> Points:
    """A shape of an eighth of the image's size at ``centre`` (the keyboard's E / F)."""
    cx, cy = centre
    rx, ry = max(columns / 16.0, 1.5), max(rows / 16.0, 1.5)
    if shape == "line":
        points = [[cx - rx, cy], [cx + rx, cy]]
    elif shape == "freehand":
        points = [
            [cx + rx * math.cos(2 * math.pi * k / 8), cy + ry * math.sin(2 * math.pi * k / 8)]
            for k in range(8)
        ]
    else:
        points = [[cx - rx, cy - ry], [cx + rx, cy + ry]]
    return clamp(points, columns, rows)


def centre_of(points: Points) -> tuple[float, float]:
    """The centre of a shape's bounding box."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return (min(xs) + max(xs)) / 2.0, (min(ys) + max(ys)) / 2.0


def move(points: Points, dx: float, dy: float, columns: int, rows: int) -> Points:
    """The shape moved by ``dx, dy``, kept whole inside the image."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    dx = min(max(dx, -min(xs)), columns - max(xs))
    dy = min(max(dy, -min(ys)), rows - max(ys))
    return [[x + dx, y + dy] for x, y in points]


def scale(points: Points, factor: float, columns: int, rows: int) -> Points:
    """The shape scaled about its centre (clamped to the image)."""
    cx, cy = centre_of(points)
    return clamp(
        [[cx + (x - cx) * factor, cy + (y - cy) * factor] for x, y in points], columns, rows
    )


def handles(shape: str, points: Points) -> Points:
    """The points a reader can drag: an ellipse's two box corners, a ruler's ends (a freehand
    outline is moved or drawn again, not edited vertex by vertex)."""
    return [list(p) for p in points] if shape in ("ellipse", "line") else []


def drag_handle(points: Points, index: int, to: tuple[float, float]) -> Points:
    """The shape with handle ``index`` moved to ``to``."""
    out = [list(p) for p in points]
    out[index] = [float(to[0]), float(to[1])]
    return out


def contains(shape: str, points: Points, x: float, y: float, tolerance: float = 0.0) -> bool:
    """Whether ``(x, y)`` is on the shape (inside an ROI, near a ruler) for picking it up."""
    if shape == "ellipse":
        (xa, ya), (xb, yb) = points
        cx, cy = (xa + xb) / 2.0, (ya + yb) / 2.0
        a, b = abs(xb - xa) / 2.0 + tolerance, abs(yb - ya) / 2.0 + tolerance
        return a > 0 and b > 0 and ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 <= 1.0
    if shape == "line":
        (xa, ya), (xb, yb) = points
        length2 = (xb - xa) ** 2 + (yb - ya) ** 2
        t = 0.0 if length2 == 0 else ((x - xa) * (xb - xa) + (y - ya) * (yb - ya)) / length2
        t = min(max(t, 0.0), 1.0)
        return math.hypot(x - (xa + t * (xb - xa)), y - (ya + t * (yb - ya))) <= tolerance
    inside = False
    n = len(points)
    for i in range(n):
        (xi, yi), (xj, yj) = points[i], points[i - 1]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
    return inside


def big_enough(shape: str, points: Points) -> bool:
    """Whether a drawn shape is more than a click (a click must not replace an ROI)."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    if shape == "freehand":
        return len(points) >= 3 and max(xs) - min(xs) >= 1.0 and max(ys) - min(ys) >= 1.0
    if shape == "line":
        return math.hypot(xs[1] - xs[0], ys[1] - ys[0]) >= 1.0
    return abs(xs[1] - xs[0]) >= 1.5 and abs(ys[1] - ys[0]) >= 1.5


def geometry(series: str, slice_index: int, shape: str, points: Points) -> dict[str, Any]:
    """The answer value the controller records for a drawn shape."""
    return {
        "series": series,
        "slice": int(slice_index),
        "shape": shape,
        "points": [[round(float(x), 3), round(float(y), 3)] for x, y in points],
    }
