"""Reader agreement: pair agreement per arm, Fleiss, Gwet AC1/AC2, Cohen between arms."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from analysis import figures
from analysis.errors import AnalysisError
from analysis.report.base import Figure, Section, SectionResult, register_section
from analysis.report.context import ReportContext

REFERENCES = [
    "Fleiss JL. Measuring nominal scale agreement among many raters. Psychol Bull 1971;76:378-382.",
    "Cohen J. Weighted kappa. Psychol Bull 1968;70:213-220.",
    "Gwet KL. Computing inter-rater reliability and its variance in the presence of high "
    "agreement. Br J Math Stat Psychol 2008;61:29-48.",
]


def _pair_agreement(reads: pd.DataFrame, arm: str, threshold: float | None) -> pd.DataFrame:
    """Reader x reader agreement on ``arm``, averaged over the findings (diagonal blank)."""
    from analysis.agreement import pair_agreement_matrix

    matrices = [
        pair_agreement_matrix(reads, arm, arm, finding=str(finding), threshold=threshold)
        for finding in dict.fromkeys(reads["finding"])
    ]
    mean = sum(matrices[1:], matrices[0]) / len(matrices)
    values = mean.to_numpy(dtype=float).copy()
    np.fill_diagonal(values, np.nan)
    return pd.DataFrame(values, index=mean.index, columns=mean.columns)


def _attempt(notes: list[str], label: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except AnalysisError as exc:
        notes.append(f"{label} not computed: {exc}")
        return None


def _pair_panels(ctx: ReportContext, threshold: float) -> dict[str, pd.DataFrame]:
    """Mean pair agreement over findings: reference-reference, then per new arm new-reference
    (rows: the new-arm reader; diagonal: the same reader across arms) and new-new."""
    panels: dict[str, pd.DataFrame] = {}
    for reference, new in ctx.comparisons:
        sums: dict[str, pd.DataFrame] = {}
        count = 0
        for arrays in (ctx.arm_matrices(reference, new) or {}).values():
            try:
                scores = arrays.scores(reference, new, threshold, "binary")
            except AnalysisError:
                continue
            count += 1
            for name in ("cc", "dc", "dd"):
                frame = pd.DataFrame(
                    getattr(scores, name).mean(axis=0), index=scores.readers,
                    columns=scores.readers,
                )  # fmt: skip
                sums[name] = frame if name not in sums else sums[name] + frame
        if not count:
            continue
        mean = {name: frame / count for name, frame in sums.items()}
        for name in ("cc", "dd"):
            values = mean[name].to_numpy(dtype=float).copy()
            np.fill_diagonal(values, np.nan)
            mean[name] = pd.DataFrame(values, index=mean[name].index, columns=mean[name].columns)
        panels.setdefault(f"{reference} (rows) vs {reference}", mean["cc"])
        panels[f"{new} (rows) vs {reference}; diagonal: same reader"] = mean["dc"]
        panels[f"{new} (rows) vs {new}"] = mean["dd"]
    return panels


@register_section
class AgreementSection(Section):
    """Agreement among the readers of each arm and of each reader with themself across arms."""

    key = "agreement"
    title = "Reader agreement"
    order = 50

    def applies(self, ctx: ReportContext) -> bool:
        return ctx.protocol.interchangeability is not None

    def compute(self, ctx: ReportContext) -> SectionResult:
        from analysis.agreement import cohen_kappa_between_arms, fleiss_kappa_by_arm, gwet_by_arm

        result = self.result()
        ic = ctx.protocol.interchangeability
        assert ic is not None
        reads = ctx.reads
        threshold = float(ic.threshold)
        points = ctx.protocol.question(ic.question).points
        grades = list(range(1, points + 1)) if points else None
        matrices = {arm: _pair_agreement(reads, arm, threshold) for arm in ctx.protocol.arm_codes}
        path = figures.cross_arm_heatmaps(
            _pair_panels(ctx, threshold),
            ctx.figure_path("agreement_heatmaps"),
            title="Reader-pair agreement within and across arms (grade >= threshold)",
            label="share of cases with the same dichotomised grade (mean over findings)",
        )
        pair_rows = [
            {"arm": arm, "reader_a": a, "reader_b": b, "agreement": float(mat.loc[a, b])}
            for arm, mat in matrices.items()
            for i, a in enumerate(mat.index)
            for b in list(mat.columns)[i + 1 :]
        ]
        present = reads.assign(value=(reads["value"] >= threshold).astype(float))
        notes = result.notes
        binary = [0.0, 1.0]
        rng = ctx.rng("agreement")
        fleiss = _attempt(notes, "Fleiss kappa", fleiss_kappa_by_arm, present,
                          categories=binary, n_boot=ctx.n_boot, rng=rng) or []  # fmt: skip
        ac1 = _attempt(notes, "Gwet AC1", gwet_by_arm, present, categories=binary) or []
        ac2 = _attempt(notes, "Gwet AC2", gwet_by_arm, reads, categories=grades,
                       weights="quadratic") or []  # fmt: skip
        coefficients = pd.DataFrame(
            [r.to_dict() for r in fleiss]
            + [{**r.to_dict(), "coefficient": "Gwet AC1"} for r in ac1]
            + [{**r.to_dict(), "coefficient": "Gwet AC2 (quadratic, grades)"} for r in ac2]
        )
        cohen_rows: list[dict[str, Any]] = []
        for reference, new in ctx.comparisons:
            cohen_rows += [
                r.to_dict()
                for r in _attempt(notes, f"Cohen's kappa {new} vs {reference}",
                                  cohen_kappa_between_arms, reads, reference, new,
                                  categories=grades, weights="quadratic") or []
            ]  # fmt: skip
        cohen = pd.DataFrame(cohen_rows)
        result.tables["agreement_reader_pairs"] = pd.DataFrame(pair_rows)
        result.tables["agreement_coefficients"] = coefficients
        result.tables["agreement_cohen_between_arms"] = cohen
        result.data = {
            "reader_pairs": pair_rows,
            "coefficients": coefficients,
            "cohen_between_arms": cohen,
        }
        result.figure(
            Figure(
                path,
                "Reader-pair agreement (share of cases with the same dichotomised grade, mean "
                "over findings; colour scale 0-1): within the reference arm, across arms (the "
                "pairs the interchangeability test compares; the diagonal is each reader with "
                "themself across arms) and within the new arm.",
            )
        )
        result.heading(
            "Agreement among the readers of each arm (findings present/absent; AC2 on the grades)"
        )
        result.table(coefficients, ["finding", "arm", "coefficient", "value", "se", "ci_low",
                                    "ci_high", "boot_ci_low", "boot_ci_high", "n_cases",
                                    "n_readers"])  # fmt: skip
        result.heading("Each reader with themself between arms (Cohen's kappa, quadratic weights)")
        result.table(cohen, ["finding", "reader", "first_arm", "second_arm", "kappa", "ci_low",
                             "ci_high", "observed_agreement", "n_cases"])  # fmt: skip
        result.methods = (
            "Agreement between readers is given as pairwise proportions of agreement, Fleiss' "
            "kappa per arm (case-bootstrap CI), Gwet's AC1 (present/absent) and AC2 (grades, "
            "quadratic weights), and Cohen's quadratic-weighted kappa of each reader with "
            "themself between arms."
        )
        result.references = list(REFERENCES)
        return result
