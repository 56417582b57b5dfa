"""Diagnostic accuracy against the reference standard: sensitivity and specificity per reader
and arm, and the Obuchowski-Rockette MRMC comparison of AUC, sensitivity and specificity."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from analysis.errors import AnalysisError
from analysis.multiplicity import decide
from analysis.report.base import (
    Decision,
    Section,
    SectionResult,
    fmt,
    p_phrase,
    register_section,
)
from analysis.report.context import ReportContext
from analysis.report.sections.interchangeability import HILLIS, OBUCHOWSKI_ROCKETTE

ALPHA = 0.05
REFERENCES = [
    OBUCHOWSKI_ROCKETTE,
    HILLIS,
    "Hillis SL, Berbaum KS, Metz CE. Recent developments in the Dorfman-Berbaum-Metz procedure "
    "for multireader ROC study analysis. Acad Radiol 2008;15:647-661.",
    "Wilson EB. Probable inference, the law of succession, and statistical inference. "
    "J Am Stat Assoc 1927;22:209-212.",
]


@register_section
class AccuracySection(Section):
    """Accuracy per reader and arm and the MRMC comparison (family applied to its decisions)."""

    key = "accuracy"
    title = "Diagnostic accuracy against the reference standard"
    order = 80

    def applies(self, ctx: ReportContext) -> bool:
        truth = ctx.truth
        return (
            ctx.protocol.interchangeability is not None
            and truth is not None
            and not truth.empty
            and not truth["truth"].dropna().empty
        )

    def compute(self, ctx: ReportContext) -> SectionResult:
        from analysis.accuracy import accuracy_table, finding_rating_array
        from analysis.mrmc import or_analysis

        result = self.result()
        ic = ctx.protocol.interchangeability
        assert ic is not None and ctx.truth is not None
        reads = ctx.reads
        threshold = float(ic.threshold)
        table = accuracy_table(reads, ctx.truth, threshold=threshold)
        result.tables["accuracy"] = table
        mrmc_rows: list[dict[str, Any]] = []
        mrmc_json: list[dict[str, Any]] = []
        for reference, new in ctx.comparisons:
            for finding in dict.fromkeys(reads["finding"]):
                where = {"finding": finding, "new": new, "reference": reference}
                try:
                    arr = finding_rating_array(
                        reads, ctx.truth, str(finding), treatments=[new, reference]
                    )
                except AnalysisError as exc:
                    mrmc_json.append({**where, "fom": "all", "error": str(exc)})
                    continue
                for fom in ("auc", "sensitivity", "specificity"):
                    try:
                        res = or_analysis(
                            arr.truth, arr.ratings, treatments=arr.treatments,
                            readers=arr.readers, fom=fom,
                            threshold=None if fom == "auc" else threshold,
                        )  # fmt: skip
                    except AnalysisError as exc:
                        mrmc_json.append({**where, "fom": fom, "error": str(exc)})
                        continue
                    mrmc_json.append({**where, **res.to_dict()})
                    means = res.treatment_means
                    for test in (res.rrrc, res.frrc, res.rrfc):
                        diff = test.differences[0]
                        mrmc_rows.append(
                            {
                                **where, "fom": fom, "analysis": test.name,
                                "fom_new": means[new], "fom_reference": means[reference],
                                "difference": diff.estimate, "se": diff.se,
                                "ci_low": diff.ci_low, "ci_high": diff.ci_high,
                                "statistic": test.statistic_name, "value": test.statistic,
                                "F": test.statistic if test.statistic_name == "F" else None,
                                "chi2": test.statistic if test.statistic_name == "chi2" else None,
                                "ndf": test.ndf,
                                "ddf": test.ddf if math.isfinite(test.ddf) else None,
                                "p": test.p,
                            }
                        )  # fmt: skip
        mrmc = pd.DataFrame(mrmc_rows)
        rrrc = mrmc[mrmc["analysis"] == "rrrc"].copy() if not mrmc.empty else mrmc
        if not rrrc.empty:
            self._decide(ctx, result, rrrc)
            mrmc = mrmc.merge(
                rrrc[["finding", "new", "reference", "fom", "p_adjusted"]],
                on=["finding", "new", "reference", "fom"], how="left",
            )  # fmt: skip
            mrmc.loc[mrmc["analysis"] != "rrrc", "p_adjusted"] = None
        result.tables["mrmc"] = mrmc
        result.data = {"threshold": threshold, "per_reader": table, "mrmc": mrmc_json}
        result.notes = [
            f"MRMC {m['fom']} not computed for {m['finding']}: {m['error']}"
            for m in mrmc_json
            if "error" in m
        ]
        result.paragraph(
            f"A grade at or above {threshold:g} counts as a positive reading. Sensitivity and "
            "specificity per reader and arm with Wilson 95% CIs:"
        )
        result.table(table, ["finding", "reader", "arm", "tp", "fn", "tn", "fp", "sensitivity",
                             "sensitivity_ci_low", "sensitivity_ci_high", "specificity",
                             "specificity_ci_low", "specificity_ci_high"])  # fmt: skip
        result.heading("Obuchowski-Rockette MRMC: random readers and cases (Hillis ddf)")
        result.table(
            rrrc,
            {"finding": "finding", "fom": "figure of merit", "new": "new",
             "reference": "reference", "fom_new": "new", "fom_reference": "reference",
             "difference": "difference", "ci_low": "95% CI low", "ci_high": "95% CI high",
             "F": "F", "ndf": "ndf", "ddf": "ddf", "p": "p", "p_adjusted": "p adjusted"},
            caption="Difference new - reference of the reader-averaged figure of merit; F on "
            "ndf and ddf (Hillis) degrees of freedom",
        )  # fmt: skip
        fixed = mrmc[mrmc["analysis"] == "frrc"] if not mrmc.empty else mrmc
        result.heading("Fixed readers, random cases (chi-square)")
        result.table(
            fixed,
            {"finding": "finding", "fom": "figure of merit", "difference": "difference",
             "ci_low": "95% CI low", "ci_high": "95% CI high", "chi2": "chi-square",
             "ndf": "df", "p": "p"},
        )  # fmt: skip
        result.paragraph("Random readers with fixed cases are in mrmc.csv and results.json.")
        result.methods = (
            "Against the reference standard, sensitivity and specificity per reader and arm are "
            "given with Wilson 95% CIs, and the arms were compared with the Obuchowski-Rockette "
            "method (empirical AUC; case-jackknife covariances; random readers and cases with "
            "Hillis denominator degrees of freedom, fixed readers, fixed cases), for AUC, "
            "sensitivity (jackknife over diseased cases) and specificity (over non-diseased "
            f"cases); the {ctx.settings.multiplicity} family is applied across findings and "
            "figures of merit of the random-reader analysis."
        )
        result.references = list(REFERENCES)
        return result

    def _decide(self, ctx: ReportContext, result: SectionResult, rrrc: pd.DataFrame) -> None:
        family = ctx.settings.multiplicity
        outcome = decide(list(rrrc["p"]), family, ALPHA)
        rrrc["p_adjusted"] = outcome.adjusted
        sentences = []
        for row, rejected in zip(rrrc.to_dict(orient="records"), outcome.rejected, strict=True):
            label = f"{ctx.finding_label(row['finding'])}, {row['fom']}"
            detail = (
                f"{row['new']} {fmt(row['fom_new'])} vs {row['reference']} "
                f"{fmt(row['fom_reference'])}, difference {fmt(row['difference'])} (95% CI "
                f"{fmt(row['ci_low'])} to {fmt(row['ci_high'])}); "
                + (p_phrase(row["p_adjusted"], "Holm-adjusted p") if family == "holm"
                   else p_phrase(row["p"]))
            )  # fmt: skip
            verdict = "differs" if rejected else "no difference shown"
            sentences.append(f"{label}: {verdict} ({detail}).")
        result.heading("Decisions (random readers and cases)")
        result.bullets(sentences)
        if family != "holm":
            text = (
                f"Accuracy, all {len(rrrc)} findings and figures of merit jointly: "
                + ("the arms differ on every one" if outcome.joint else "a difference on every "
                   "one is not shown") + " (intersection-union test)."
            )  # fmt: skip
            result.decisions.append(
                Decision(self.key, "accuracy: all", text, outcome.joint, family)
            )
            return
        differing = [s for s, r in zip(sentences, outcome.rejected, strict=True) if r]
        text = (
            f"Accuracy (random readers and cases, Holm across {len(rrrc)} findings x figures of "
            f"merit): {len(differing)} {'shows' if len(differing) == 1 else 'show'} a difference "
            "between the arms"
            + (": " + "; ".join(s.split(":")[0] for s in differing) if differing else "")
            + "."
        )
        result.decisions.append(Decision(self.key, "accuracy", text, None, family))
