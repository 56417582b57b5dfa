"""What every report section can read: the inputs, the protocol's settings and shared results."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd

from analysis.errors import AnalysisError

if TYPE_CHECKING:
    from analysis.interchangeability import ArmMatrices
    from analysis.reads import ReadsTable
    from analysis.report.base import SectionResult
    from studies.protocol import AnalysisSettings, Protocol

_T = TypeVar("_T")


@dataclass
class ReportContext:
    """The inputs of one report and what sections share.

    Attributes
    ----------
    protocol : studies.protocol.Protocol
    answers : pandas.DataFrame
        The tidy unblinded answers export (training cases included; see :attr:`analysed`).
    truth : pandas.DataFrame or None
        ``case, finding, truth`` where a reference standard exists.
    assignments : pandas.DataFrame or None
        ``studies.export.assignments_frame`` where the report is built from a study database:
        every case assigned (read or not), for the flow diagram and the missing-data tables.
    measurements : pandas.DataFrame or None
        The tidy measurement table (``studies.export.measurements_frame``: ``case, reader,
        arm, session, measurement, value, unit``) where the protocol has ``[[measurements]]``.
    study_record : dict or None
        ``analysis.report.inputs.study_record_from_db`` where the report is built from a study
        database: verification, sign-in policy, distinguishability and the report's anchor.
    out_dir : pathlib.Path
        Where figures and tables go.
    n_boot, seed : int
        Bootstrap resamples and the seed every random generator derives from.
    results : dict
        The results of the sections computed so far, by key (sections run in ``order``).
    """

    protocol: Protocol
    answers: pd.DataFrame
    truth: pd.DataFrame | None
    out_dir: Path
    n_boot: int = 2000
    seed: int = 0
    assignments: pd.DataFrame | None = None
    measurements: pd.DataFrame | None = None
    study_record: dict[str, Any] | None = None
    results: dict[str, SectionResult] = field(default_factory=dict)
    _cache: dict[str, Any] = field(default_factory=dict)

    @property
    def settings(self) -> AnalysisSettings:
        """The protocol's ``[analysis]`` settings (defaults where the table is absent)."""
        return self.protocol.analysis

    @property
    def comparisons(self) -> list[tuple[str, str]]:
        """``(reference, new)`` for every non-reference arm."""
        reference = self.protocol.reference_arm.code
        return [(reference, arm.code) for arm in self.protocol.other_arms]

    @property
    def analysed(self) -> pd.DataFrame:
        """The answers without the training cases."""
        training = self.protocol.training_cases
        if not training:
            return self.answers
        return self.answers[~self.answers["case"].astype(str).isin(training)]

    def rng(self, key: str) -> np.random.Generator:
        """A generator for one analysis, derived from the seed and ``key``.

        Each section draws from its own stream, so adding, removing or reordering sections
        never changes another section's numbers.
        """
        return np.random.default_rng([self.seed, zlib.crc32(key.encode("utf-8"))])

    def cached(self, key: str, compute: Callable[[], _T]) -> _T:
        """Compute a value once per report and share it between sections."""
        if key not in self._cache:
            self._cache[key] = compute()
        value: _T = self._cache[key]
        return value

    def figure_path(self, stem: str) -> Path:
        """Where a section writes its figure ``stem`` (a PNG in the output folder)."""
        return self.out_dir / f"{stem}.png"

    @property
    def reads_table(self) -> ReadsTable | None:
        """The validated reads of the interchangeability question (None without one)."""
        if self.protocol.interchangeability is None:
            return None

        def build() -> ReadsTable:
            from analysis.reads import reads_from_answers

            return reads_from_answers(self.answers, self.protocol, source="answers")

        return self.cached("reads_table", build)

    @property
    def reads(self) -> pd.DataFrame:
        """The reads of the interchangeability question (AnalysisError without one)."""
        table = self.reads_table
        if table is None:
            raise AnalysisError("the protocol has no [interchangeability] question")
        return table.reads

    def arm_matrices(self, reference: str, new: str) -> dict[str, ArmMatrices] | None:
        """Each finding's reads of two arms as case x reader matrices (shared by the sections;
        None when some finding's reads cannot be arranged so: the analyses then say why)."""
        from analysis.interchangeability import arm_matrices

        def build() -> dict[str, ArmMatrices] | None:
            reads = self.reads
            part = reads[reads["arm"].isin([reference, new])]
            try:
                return {
                    str(name): arm_matrices(rows, reference, new, finding=str(name))
                    for name, rows in part.groupby(part["finding"].astype(str), sort=False)
                }
            except AnalysisError:
                return None

        return self.cached(f"arm_matrices:{reference}:{new}", build)

    def finding_label(self, finding: str) -> str:
        """The protocol's label of a finding (the id where it has none)."""
        labels = {f.id: f.label for f in self.protocol.findings}
        return labels.get(str(finding), str(finding))

    def arm_label(self, code: str) -> str:
        """``code (description)`` for a protocol arm."""
        try:
            return f"{code} ({self.protocol.arm(code).description})"
        except Exception:  # an arm outside the protocol only reaches here from a CSV export
            return code

    def question_label(self, question: str) -> str:
        """The text of a protocol question (the id where it is unknown)."""
        try:
            return self.protocol.question(question).text
        except Exception:
            return question
