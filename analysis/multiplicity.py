"""The protocol's multiplicity family, applied to every set of decisions the report makes.

Two families (``[analysis] multiplicity``):

- ``"holm"``: each hypothesis on its own; the p-values of a family (the findings of one
  comparison, the image-quality questions, the findings x figures of merit of accuracy) are
  Holm-adjusted (Holm 1979; :func:`holm`) and a hypothesis is
  rejected when its adjusted p-value is below the level. Controls the familywise error.
- ``"intersection-union"``: the claim is joint (Berger 1982): it holds when every hypothesis of
  the family is rejected at the unadjusted level; no single hypothesis is claimed on its own.
  The joint test's error is at most the level, with no adjustment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from analysis.errors import AnalysisError

Family = Literal["holm", "intersection-union"]
FAMILIES: tuple[str, ...] = ("holm", "intersection-union")

HOLM_REFERENCE = (
    "Holm S. A simple sequentially rejective multiple test procedure. Scand J Stat 1979;6:65-70."
)
IUT_REFERENCE = (
    "Berger RL. Multiparameter hypothesis testing and acceptance sampling. Technometrics "
    "1982;24:295-300."
)


@dataclass(frozen=True)
class FamilyDecision:
    """The decisions of one family of hypotheses.

    ``adjusted``: Holm-adjusted p-values (``"holm"``) or the p-values as they are
    (``"intersection-union"``); ``rejected``: per hypothesis, adjusted p below ``alpha`` (under
    intersection-union this is each hypothesis's own result, which is not a claim on its own);
    ``joint``: the joint claim (intersection-union only: every hypothesis rejected).
    """

    family: str
    alpha: float
    p_values: list[float]
    adjusted: list[float]
    rejected: list[bool]
    joint: bool | None

    @property
    def claims(self) -> list[bool]:
        """What the report may claim per hypothesis: Holm's rejections, or under
        intersection-union the joint result for every member."""
        if self.family == "holm":
            return list(self.rejected)
        return [bool(self.joint)] * len(self.rejected)


def holm(p_values: Sequence[float] | np.ndarray) -> list[float]:
    """Holm-adjusted p-values: ``max_{k <= i} min(1, (m - k + 1) p_(k))`` in sorted order.

    The same numbers as ``statsmodels.stats.multitest.multipletests(method="holm")`` (the tests
    compare), without its garbage-collection pass, which costs a fifth of a second per call
    in a process with a large heap.
    """
    values = np.asarray(p_values, dtype=float)
    m = values.size
    order = np.argsort(values, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * values[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return [float(p) for p in adjusted]


def decide(p_values: Sequence[float | None], family: str, alpha: float) -> FamilyDecision:
    """Apply a multiplicity family to p-values (a missing p-value counts as not rejected).

    Parameters
    ----------
    p_values : sequence of float or None
        The unadjusted p-values of the family's hypotheses.
    family : {"holm", "intersection-union"}
    alpha : float
        The level each decision is made at (one-sided 0.025 for interchangeability, two-sided
        0.05 for the image-quality and accuracy tests).
    """
    if family not in FAMILIES:
        raise AnalysisError(f"multiplicity must be one of {', '.join(FAMILIES)}, got {family!r}")
    values = np.array([1.0 if p is None or not np.isfinite(p) else float(p) for p in p_values])
    if values.size == 0:
        return FamilyDecision(family, alpha, [], [], [], None)
    if family == "holm":
        adjusted = holm(values)
        rejected = [bool(p < alpha) for p in adjusted]
        return FamilyDecision(
            family, alpha, values.tolist(), [float(p) for p in adjusted], rejected, None
        )
    rejected = [bool(p < alpha) for p in values]
    return FamilyDecision(family, alpha, values.tolist(), values.tolist(), rejected, all(rejected))
