"""Synthetic focal lesions with known location: the demo's ground truth."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FINDINGS = ("lesion_left", "lesion_right")


@dataclass(frozen=True)
class Lesion:
    """One inserted lesion: the finding it belongs to, its centre (slice, row, column), radius."""

    finding: str
    slice_index: int
    row: int
    column: int
    radius_px: float


def place_lesions(
    volume: np.ndarray, rng: np.random.Generator, p_present: float = 0.5
) -> tuple[np.ndarray, dict[str, int], list[Lesion]]:
    """Insert hyperintense lesions into a magnitude volume, each hemisphere independently.

    Parameters
    ----------
    volume
        Magnitude images ``(slices, rows, columns)``; not modified.
    rng
        The seeded generator that decides presence, position and size.
    p_present
        Probability that a hemisphere carries a lesion.

    Returns
    -------
    images, truth, lesions
        The volume with lesions, the truth per finding (1 present, 0 absent), and the lesions.
        "Left" is the patient's left, shown on the right of the image (radiological convention).
    """
    images = np.array(volume, dtype=np.float32, copy=True)
    n_slices, rows, cols = images.shape
    tissue = images > 0.25 * float(images.max())
    yy, xx = np.mgrid[0:rows, 0:cols]
    truth: dict[str, int] = {}
    lesions: list[Lesion] = []
    for finding in FINDINGS:
        present = bool(rng.random() < p_present)
        truth[finding] = int(present)
        if not present:
            continue
        centre_slice = int(rng.integers(n_slices // 3, max(n_slices // 3 + 1, 2 * n_slices // 3)))
        half = (slice(None), slice(cols // 2 + 4, cols - 4))
        if finding == "lesion_right":
            half = (slice(None), slice(4, cols // 2 - 4))
        candidates = np.argwhere(tissue[centre_slice][half])
        if len(candidates) == 0:
            truth[finding] = 0
            continue
        r, c = candidates[int(rng.integers(len(candidates)))]
        c = int(c) + (half[1].start or 0)
        radius = float(rng.uniform(2.5, 4.5))
        amplitude = 0.6 * float(np.median(images[centre_slice][tissue[centre_slice]]))
        for dz in (-1, 0, 1):
            z = centre_slice + dz
            if not 0 <= z < n_slices:
                continue
            scale = 1.0 if dz == 0 else 0.6
            blob = np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * (radius * scale) ** 2))
            images[z] += amplitude * scale * blob.astype(np.float32)
        lesions.append(Lesion(finding, centre_slice, int(r), c, radius))
    return images, truth, lesions
