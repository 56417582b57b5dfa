"""Orientation letters for the edges of an image pane, from DICOM ImageOrientationPatient.

DICOM's patient axes (PS3.3 C.7.6.2.1.1) point to the patient's Left (+x), Posterior (+y) and
Superior (+z). ImageOrientationPatient holds the direction of the image rows (the way the column
index grows, i.e. towards the right edge) and of the columns (towards the bottom edge). An edge
is labelled by the axes its direction points along, strongest first: ``L``, ``A``, ``S`` for a
plane along the axes, ``LP`` for an oblique one. Pure Python (no Qt, no pydicom).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: (negative, positive) letter of each patient axis x, y, z.
AXIS_LETTERS = (("R", "L"), ("A", "P"), ("I", "S"))

#: A component below this (about 17 degrees from the plane) gets no letter of its own.
OBLIQUE_THRESHOLD = 0.3


@dataclass(frozen=True)
class EdgeLetters:
    """The letter(s) at each edge of a pane; empty without orientation."""

    left: str = ""
    right: str = ""
    top: str = ""
    bottom: str = ""


def direction_letters(vector: Sequence[float], threshold: float = OBLIQUE_THRESHOLD) -> str:
    """The letters of a direction in patient space, strongest axis first (``"L"``, ``"LP"``).

    Parameters
    ----------
    vector
        A direction (x, y, z) in DICOM patient coordinates; need not be unit length.
    threshold
        Components whose share of the length is below this get no letter (the strongest
        always gets one).
    """
    x, y, z = (float(v) for v in vector)
    length = (x * x + y * y + z * z) ** 0.5
    if length == 0.0:
        return ""
    parts = sorted(
        ((abs(value) / length, axis, value) for axis, value in enumerate((x, y, z))),
        reverse=True,
    )
    letters = []
    for rank, (share, axis, value) in enumerate(parts):
        if rank > 0 and share < threshold:
            break
        letters.append(AXIS_LETTERS[axis][1 if value > 0 else 0])
    return "".join(letters)


def edge_letters(
    row_direction: Sequence[float] | None, column_direction: Sequence[float] | None
) -> EdgeLetters:
    """The letters of the four pane edges of an image with this orientation.

    ``row_direction`` points to the right edge, ``column_direction`` to the bottom edge (the
    two triples of ImageOrientationPatient). Without orientation every edge is empty.
    """
    if row_direction is None or column_direction is None:
        return EdgeLetters()
    right = direction_letters(row_direction)
    bottom = direction_letters(column_direction)
    left = direction_letters([-v for v in row_direction])
    top = direction_letters([-v for v in column_direction])
    return EdgeLetters(left=left, right=right, top=top, bottom=bottom)
