"""Real studies with roi / distance questions for the store, export, SR and viewer tests:
phantom DICOM series (rescale slope 2, intercept -10; PixelSpacing 0.5 x 0.8 mm so rows and
columns differ) built with ``create_study``, and the numpy reference of what an ROI measures."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from tests.studies.study_factory import START, FakeClock

ARMS = """
[[arms]]
code = "conv"
description = "Conventional SENSE reconstruction"
reference = true

[[arms]]
code = "varnet"
description = "Variational network reconstruction"

[[readers]]
id = "R1"
name = "Dr Ada Reader"

[[readers]]
id = "R2"
name = "Dr Bo Reader"
"""

SEQUENTIAL_MEASUREMENTS = (
    """
title = "Measurement study"
design = "sequential"
seed = 5
washout_days = 0
"""
    + ARMS
    + """
[[questions]]
id = "quality"
text = "Overall image quality"
type = "likert"
points = 4
labels = ["Non-diagnostic", "Limited", "Good", "Excellent"]

[[questions]]
id = "roi_muscle"
text = "Muscle ROI"
type = "roi"
roi = "muscle"
shapes = ["ellipse", "freehand"]

[[questions]]
id = "roi_fluid"
text = "Fluid ROI"
type = "roi"
roi = "fluid"
required = false

[[questions]]
id = "roi_background"
text = "Background ROI (air)"
type = "roi"
roi = "background"
shapes = ["ellipse"]

[[questions]]
id = "ruler"
text = "Cartilage thickness"
type = "distance"
required = false

[[measurements]]
id = "snr_muscle"
label = "SNR of muscle"
kind = "snr"
roi = "roi_muscle"
background = "roi_background"
margin = 2.0

[[measurements]]
id = "cnr_muscle_fluid"
label = "CNR muscle / fluid"
kind = "cnr"
roi = "roi_muscle"
roi_b = "roi_fluid"
background = "roi_background"

[[measurements]]
id = "thickness"
label = "Cartilage thickness"
kind = "distance"
roi = "ruler"
margin = 0.5
"""
)

PAIRED_MEASUREMENTS = (
    """
title = "Paired measurement study"
design = "paired"
seed = 9
washout_days = 0
"""
    + ARMS
    + """
[[questions]]
id = "quality"
text = "Image quality"
type = "likert"
scope = "side"
points = 4
labels = ["Poor", "Fair", "Good", "Excellent"]

[[questions]]
id = "roi_muscle"
text = "Muscle ROI"
type = "roi"
roi = "muscle"
scope = "side"
mirror = true

[[questions]]
id = "roi_background"
text = "Background ROI"
type = "roi"
roi = "background"
scope = "side"
mirror = true

[[measurements]]
id = "snr_muscle"
label = "SNR of muscle"
kind = "snr"
roi = "roi_muscle"
background = "roi_background"
"""
)

#: An exam of two series with a muscle ROI per series and one background ROI per case.
PER_SERIES_MEASUREMENTS = (
    """
title = "Per-series measurement study"
design = "sequential"
seed = 5
washout_days = 0

[hanging]
layout = "1x2"
series = ["ax_t1", "ax_t2"]
"""
    + ARMS
    + """
[[questions]]
id = "roi_muscle"
text = "Muscle ROI"
type = "roi"
roi = "muscle"
per = "series"

[[questions]]
id = "roi_background"
text = "Background ROI"
type = "roi"
roi = "background"

[[measurements]]
id = "snr_muscle"
label = "SNR of muscle"
kind = "snr"
roi = "roi_muscle"
background = "roi_background"
"""
)
EXAM_SERIES = ("ax_t1", "ax_t2")

PIXEL_SPACING = (0.5, 0.8)  # (row, column) mm


def phantom(n_slices: int, rows: int, cols: int, seed: int) -> np.ndarray:
    """A body with a bright 'fluid' disc and noise on an almost black background (uint16)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols]
    yn = (y - rows / 2) / (rows / 2)
    xn = (x - cols / 2) / (cols / 2)
    volume = np.zeros((n_slices, rows, cols))
    for k in range(n_slices):
        body = (xn / 0.7) ** 2 + (yn / 0.8) ** 2 < 1
        fluid = ((xn - 0.3) / 0.15) ** 2 + ((yn + 0.2) / 0.15) ** 2 < 1
        volume[k] = 20 + 600 * body + 500 * fluid + rng.normal(0, 15 + 5 * k, size=(rows, cols))
    return np.clip(volume, 0, 4095).astype(np.uint16)


def write_source(
    folder: Path,
    protocol: str,
    *,
    n_cases: int = 2,
    n_slices: int = 4,
    size: int = 48,
    series: tuple[str, ...] = (),
) -> tuple[Path, Path]:
    """Protocol, CASES.csv and the phantom series of a small measurement study; with
    ``series`` every case is an exam of those labelled series."""
    from tests.studies.conftest import make_series

    folder.mkdir(parents=True, exist_ok=True)
    protocol_path = folder / "protocol.toml"
    protocol_path.write_text(protocol, encoding="utf-8")
    lines = ["case_id,subject_id,arm,series_dir" + (",series" if series else "")]
    for i in range(n_cases):
        for j, arm in enumerate(("conv", "varnet")):
            for k, label in enumerate(series or ("",)):
                series_dir = f"src/subj{i}_{arm}" + (f"_{label}" if label else "")
                seed = 100 * i + 10 * k + j
                files = make_series(
                    folder / series_dir, n_slices, size, size, identifying=False, private=False,
                    seed=seed, pixel_spacing=PIXEL_SPACING, RescaleSlope=2, RescaleIntercept=-10,
                    RescaleType="US",
                )  # fmt: skip
                for path, pixels in zip(files, phantom(n_slices, size, size, seed), strict=True):
                    ds = pydicom.dcmread(path)
                    ds.PixelData = pixels.tobytes()
                    ds.save_as(path, enforce_file_format=True)
                lines.append(
                    f"case{i + 1:02d},subj{i + 1:02d},{arm},{series_dir}"
                    + (f",{label}" if label else "")
                )
    cases = folder / "CASES.csv"
    cases.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return protocol_path, cases


def build(folder: Path, protocol: str = SEQUENTIAL_MEASUREMENTS, **kwargs: Any) -> Path:
    """A measurement study database in ``folder / "study"``."""
    from studies.create import create_study

    protocol_path, cases = write_source(folder, protocol, **kwargs)
    (folder / "study").mkdir()
    db = folder / "study" / "study.sqlite"
    create_study(protocol_path, cases, db, clock=FakeClock(START - timedelta(days=1)))
    return db


def blinded_pixels(path: Path) -> tuple[np.ndarray, tuple[float, float]]:
    """A blinded slice's values (rescale applied, float64) and PixelSpacing, read with pydicom."""
    ds = pydicom.dcmread(path)
    slope = float(getattr(ds, "RescaleSlope", 1.0))
    intercept = float(getattr(ds, "RescaleIntercept", 0.0))
    pixels = ds.pixel_array.astype(np.float64) * slope + intercept
    return pixels, (float(ds.PixelSpacing[0]), float(ds.PixelSpacing[1]))


def reference_ellipse(pixels: np.ndarray, points: list[list[float]]) -> np.ndarray:
    """The values inside an ellipse given by its bounding box, by a plain loop over pixels."""
    (xa, ya), (xb, yb) = points
    cx, cy, a, b = (xa + xb) / 2, (ya + yb) / 2, abs(xb - xa) / 2, abs(yb - ya) / 2
    inside = [
        pixels[r, c]
        for r in range(pixels.shape[0])
        for c in range(pixels.shape[1])
        if ((c + 0.5 - cx) / a) ** 2 + ((r + 0.5 - cy) / b) ** 2 <= 1
    ]
    return np.asarray(inside)
