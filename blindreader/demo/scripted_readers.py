"""Scripted demo readers: answers drawn with a chosen error rate that grows as image quality falls.

These stand in for radiologists in the headless demo. They know the simulated truth and the
measured quality (SSIM against the fully sampled image) of each series, and err at random. For
the measurement questions they know where the simulated head has tissue and where there is only
air (:func:`roi_plan`, from the simulated images) and place their ROIs there, each with a little
jitter of their own; what the ROIs measure comes from the reconstructed pixels (the store
measures them).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from studies.api import AnswerValue
from studies.protocol import Question


@dataclass(frozen=True)
class RoiPlan:
    """Where a case's ROIs go: the centre and radius (pixels) of a disc of bright tissue on
    slice ``slice_index`` (0-based), and the centre of an air region outside the head."""

    slice_index: int
    tissue: tuple[float, float]  # (x, y) image coordinates
    tissue_radius: float
    air: tuple[float, float]
    air_radius: float


def roi_plan(images: np.ndarray) -> RoiPlan:
    """The ROI plan of a simulated magnitude volume ``(slices, rows, columns)``.

    Tissue: on the middle slice (the one the viewer opens on), the point of the brightest tissue
    (above 60% of the smoothed slice's maximum: white matter on T1) farthest from its edge.
    Air: the point farthest from the head (below 5% of the maximum) within the image.
    """
    index = (images.shape[0] - 1) // 2  # the slice the viewer opens on
    image = ndimage.gaussian_filter(np.asarray(images[index], dtype=np.float64), 1.5)
    peak = float(image.max())
    bright = ndimage.binary_opening(image > 0.6 * peak, iterations=1)
    inside = ndimage.distance_transform_edt(bright)
    r, c = np.unravel_index(int(np.argmax(inside)), inside.shape)
    air = ndimage.distance_transform_edt(np.pad(image < 0.05 * peak, 1))[1:-1, 1:-1]
    ar, ac = np.unravel_index(int(np.argmax(air)), air.shape)
    return RoiPlan(
        slice_index=index,
        tissue=(float(c) + 0.5, float(r) + 0.5),
        tissue_radius=float(min(inside[r, c], 12.0)),
        air=(float(ac) + 0.5, float(ar) + 0.5),
        air_radius=float(min(air[ar, ac] - 1.0, 12.0)),
    )


@dataclass(frozen=True)
class SeriesFacts:
    """What the script knows of a displayed series: its case, arm, SSIM and the case's truth."""

    case_id: str
    arm: str
    ssim: float  # 1.0 for the fully sampled reference
    truth: dict[str, int]
    plan: RoiPlan | None = None  # where the case's ROIs go


@dataclass(frozen=True)
class ScriptedReader:
    """A simulated reader: a base error rate on perfect images and a seed."""

    reader_id: str
    error_rate: float
    seed: int

    def _rng(self, *parts: str) -> np.random.Generator:
        # One generator per (reader, case, arm, question, finding): answers do not depend on the
        # order in which the viewer asks for them.
        key = [self.seed, *(zlib.crc32(p.encode()) for p in (self.reader_id, *parts))]
        return np.random.default_rng(np.random.SeedSequence(key))

    def answer(self, facts: SeriesFacts, question: Question, finding_id: str | None) -> AnswerValue:
        """The answer this reader gives to one question on one series (None: leave it empty)."""
        rng = self._rng(facts.case_id, facts.arm, question.id, finding_id or "")
        if question.type == "roi" and facts.plan is not None:
            return self._roi(facts.plan, question, rng)
        if question.type != "likert" or question.points is None:
            return None
        points = question.points
        if finding_id is not None:
            present = bool(facts.truth.get(finding_id, 0))
            error = min(0.5, self.error_rate + 0.5 * (1.0 - facts.ssim))
            called = present != bool(rng.random() < error)
            confident = bool(rng.random() < 0.6)
            if called:
                return points if confident else points - 1
            return 1 if confident else 2
        quality = float(np.clip((facts.ssim - 0.6) / 0.4, 0.0, 1.0))
        grade = 1 + round(quality * (points - 1)) + int(rng.choice([-1, 0, 0, 0, 1]))
        return int(np.clip(grade, 1, points))

    def _roi(self, plan: RoiPlan, question: Question, rng: np.random.Generator) -> AnswerValue:
        """An ellipse on the tissue (or, for the ROI named ``background``, the air), moved and
        sized a little by this reader's hand; ``series`` is filled in by the caller."""
        if question.roi == "background":
            (cx, cy), radius = plan.air, plan.air_radius
        else:
            (cx, cy), radius = plan.tissue, plan.tissue_radius
        jitter = 0.15 * radius
        cx += float(rng.normal(0.0, jitter))
        cy += float(rng.normal(0.0, jitter))
        rx = max(0.6 * radius * float(rng.uniform(0.85, 1.0)), 2.0)
        ry = max(0.6 * radius * float(rng.uniform(0.85, 1.0)), 2.0)
        return {
            "slice": plan.slice_index,
            "shape": "ellipse",
            "points": [
                [round(cx - rx, 2), round(cy - ry, 2)],
                [round(cx + rx, 2), round(cy + ry, 2)],
            ],
        }
