"""Scripted demo readers: answers drawn with a chosen error rate that grows as image quality falls.

These stand in for radiologists in the headless demo. They know the simulated truth and the
measured quality (SSIM against the fully sampled image) of each series, and err at random.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from studies.api import AnswerValue
from studies.protocol import Question


@dataclass(frozen=True)
class SeriesFacts:
    """What the script knows of a displayed series: its case, arm, SSIM and the case's truth."""

    case_id: str
    arm: str
    ssim: float  # 1.0 for the fully sampled reference
    truth: dict[str, int]


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
