"""Interchangeability per finding: the primary analysis the protocol names, then the other one."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pandas as pd

from analysis import figures
from analysis.decision import ALPHA, N_INNER, N_OUTER
from analysis.interchangeability import (
    InterchangeabilityResult,
    interchangeability_by_finding_models,
)
from analysis.multiplicity import HOLM_REFERENCE, IUT_REFERENCE, FamilyDecision, decide
from analysis.report.base import (
    Decision,
    Figure,
    Section,
    SectionResult,
    p_phrase,
    pct,
    register_section,
)
from analysis.report.context import ReportContext

OBUCHOWSKI = (
    "Obuchowski NA, Subhas N, Schoenhagen P. Testing for interchangeability of imaging tests. "
    "Acad Radiol 2014;21:1483-1489."
)
OBUCHOWSKI_ROCKETTE = (
    "Obuchowski NA, Rockette HE. Hypothesis testing of diagnostic accuracy for multiple readers "
    "and multiple tests: an ANOVA approach with dependent observations. Commun Stat Simul Comput "
    "1995;24:285-308."
)
HILLIS = (
    "Hillis SL. A comparison of denominator degrees of freedom methods for multiple observer ROC "
    "analysis. Stat Med 2007;26:596-619."
)
BERAN = "Beran R. Prepivoting to reduce level error of confidence sets. Biometrika 1987;74:457-468."
HALL = "Hall P. The Bootstrap and Edgeworth Expansion. New York: Springer; 1992."

TABLE_COLUMNS = {
    "finding": "finding",
    "new": "new",
    "reference": "reference",
    "excess_disagreement": "gamma",
    "ci_low": "95% CI low",
    "ci_high": "95% CI high",
    "p_value": "p (H0: gamma >= margin)",
    "p_adjusted": "p adjusted",
    "claimed": "decision",
    "a_rr": "A_RR",
    "a_tr": "A_TR",
    "a_tt": "A_TT",
    "n_cases": "N",
    "n_readers": "J",
    "df": "df",
    "boot_ci_low": "bootstrap low",
    "boot_ci_high": "bootstrap high",
}

MODEL_WORDS = {"random": "random readers", "fixed": "fixed readers"}


def family_rows(
    results: list[InterchangeabilityResult], family: str
) -> tuple[list[dict[str, Any]], FamilyDecision]:
    """Result rows with the family's adjusted p-values and claims (``p_adjusted``, ``claimed``)."""
    outcome = decide([r.p_value for r in results], family, ALPHA)
    rows = []
    for result, adjusted, claim in zip(results, outcome.adjusted, outcome.claims, strict=True):
        if family == "holm":
            result = replace(result, p_holm=adjusted, interchangeable_holm=bool(adjusted < ALPHA))
        rows.append({**result.to_dict(), "p_adjusted": adjusted, "claimed": claim})
    return rows, outcome


def decision_sentence(
    row: dict[str, Any], label: str, model: str, family: str, *, unit: str = "share"
) -> str:
    """One finding's decision in words (the claim under the family, Holm's adjusted p)."""
    new, reference = str(row["new"]), str(row["reference"])
    est, low, high = row.get("excess_disagreement"), row.get("ci_low"), row.get("ci_high")
    show = pct if unit == "share" else (lambda v: "–" if v is None else f"{float(v):.3f}")
    ci = f"excess disagreement {show(est)}, 95% CI {show(low)} to {show(high)}"
    margin = show(row["margin"])
    if high is None:
        return f"{label}: no decision ({ci}; the interval could not be computed)."
    adjusted = (
        "; " + p_phrase(row.get("p_adjusted"), "Holm-adjusted p")
        if family == "holm"
        else "; " + p_phrase(row.get("p_value"))
    )
    who = MODEL_WORDS.get(model, model)
    if row.get("claimed"):
        return (
            f"{label}: {new} is interchangeable with {reference} for {who} ({ci}; the upper "
            f"bound is below the {margin} margin{adjusted})."
        )
    if row.get("interchangeable"):
        reason = f"the upper bound is below the {margin} margin but not after the adjustment"
    else:
        reason = f"the upper bound is not below the {margin} margin"
    return (
        f"{label}: interchangeability of {new} with {reference} is not shown for {who} ({ci}; "
        f"{reason}{adjusted})."
    )


def joint_sentence(
    outcome: FamilyDecision, labels: list[str], new: str, reference: str, who: str
) -> str:
    """The intersection-union claim over every finding, in words."""
    failed = [label for label, ok in zip(labels, outcome.rejected, strict=True) if not ok]
    if outcome.joint:
        return (
            f"All {len(labels)} findings jointly: {new} is interchangeable with {reference} for "
            f"{who} (every finding's upper bound is below its margin; intersection-union test)."
        )
    return (
        f"All {len(labels)} findings jointly: interchangeability of {new} with {reference} is not "
        f"shown for {who} ({len(failed)} of {len(labels)} findings do not pass: "
        f"{', '.join(failed)}; intersection-union test)."
    )


@register_section
class InterchangeabilitySection(Section):
    """Primary and secondary interchangeability analysis per finding, with the family applied."""

    key = "interchangeability"
    title = "Interchangeability per finding"
    order = 20

    def applies(self, ctx: ReportContext) -> bool:
        return ctx.protocol.interchangeability is not None

    def compute(self, ctx: ReportContext) -> SectionResult:
        result = self.result()
        ic = ctx.protocol.interchangeability
        assert ic is not None
        settings = ctx.settings
        primary = settings.primary_readers
        secondary = "fixed" if primary == "random" else "random"
        family = settings.multiplicity
        reads = ctx.reads
        result.data = {
            "question": ic.question,
            "threshold": ic.threshold,
            "margin": ic.margin,
            "primary": primary,
            "multiplicity": family,
            "fixed_readers": [],
            "random_readers": [],
        }
        all_rows: list[dict[str, Any]] = []
        for reference, new in ctx.comparisons:
            part = reads[reads["arm"].isin([reference, new])]
            by_model, errors = interchangeability_by_finding_models(
                part,
                reference,
                new,
                models=("fixed", "random"),
                threshold=ic.threshold,
                margin=ic.margin,
                n_boot=ctx.n_boot,
                rng=ctx.rng(f"interchangeability:{reference}:{new}"),
                matrices=ctx.arm_matrices(reference, new),
            )
            for model, message in errors.items():
                result.notes.append(
                    f"{MODEL_WORDS[model]} interchangeability, {new} vs {reference}, not "
                    f"computed: {message}"
                )
            primary_model = primary if primary in by_model else secondary
            if primary_model != primary:
                result.callout(
                    f"The pre-specified primary analysis ({MODEL_WORDS[primary]}) could not be "
                    f"computed; the {MODEL_WORDS[primary_model]} analysis is shown in its place "
                    "and does not support a claim about other readers."
                )
            rows_by_model: dict[str, list[dict[str, Any]]] = {}
            for model, results in by_model.items():
                rows, outcome = family_rows(results, family)
                for row in rows:
                    row["role"] = "primary" if model == primary_model else "secondary"
                rows_by_model[model] = rows
                result.data[f"{model}_readers"] += rows
                all_rows += rows
                labels = [ctx.finding_label(r["finding"]) for r in rows]
                if model == primary_model:
                    self._decisions(result, rows, outcome, labels, model, family, new, reference)
            self._figure(ctx, result, rows_by_model, primary_model, reference, new, ic.margin)
            for model in (primary_model, secondary):
                if model not in rows_by_model:
                    continue
                role = "primary" if model == primary_model else "secondary"
                result.heading(f"{new} vs {reference}: {MODEL_WORDS[model]} ({role})")
                result.table(pd.DataFrame(rows_by_model[model]), TABLE_COLUMNS)
        frame = pd.DataFrame(all_rows)
        result.tables["interchangeability"] = frame
        result.paragraph(
            "gamma: excess disagreement (share of reader pairs that agree when both read the "
            "reference minus the share when one reads the new arm); A_RR, A_TR, A_TT: agreement "
            "of reference-reference, new-reference and new-new reader pairs; df: degrees of "
            "freedom of the random-reader t interval; bootstrap: a second-opinion percentile "
            "interval (case bootstrap for fixed readers, two-way reader and case bootstrap for "
            "random readers, which over-covers); skewness of the per-case values in "
            "interchangeability.csv."
        )
        result.methods = _methods(ctx)
        result.references = [OBUCHOWSKI, OBUCHOWSKI_ROCKETTE, HILLIS, BERAN, HALL] + (
            [HOLM_REFERENCE] if family == "holm" else [IUT_REFERENCE]
        )
        return result

    def _decisions(
        self,
        result: SectionResult,
        rows: list[dict[str, Any]],
        outcome: FamilyDecision,
        labels: list[str],
        model: str,
        family: str,
        new: str,
        reference: str,
    ) -> None:
        sentences = [
            decision_sentence(row, label, model, family)
            for row, label in zip(rows, labels, strict=True)
        ]
        if family == "holm":
            for row, sentence in zip(rows, sentences, strict=True):
                result.decisions.append(
                    Decision(
                        section=self.key,
                        claim=f"{new} interchangeable with {reference}: {row['finding']}",
                        sentence=sentence,
                        passed=bool(row["claimed"]),
                        family=family,
                    )
                )
            result.heading(f"Decisions, {new} vs {reference} (primary, Holm across findings)")
            result.bullets(sentences)
            return
        joint = joint_sentence(outcome, labels, new, reference, MODEL_WORDS[model])
        result.decisions.append(
            Decision(
                section=self.key,
                claim=f"{new} interchangeable with {reference}: all findings",
                sentence=joint,
                passed=bool(outcome.joint),
                family=family,
            )
        )
        result.heading(f"Decision, {new} vs {reference} (primary, intersection-union)")
        result.callout(joint)
        result.paragraph(
            "Per finding (each at the unadjusted level; under the intersection-union family they "
            "are the components of the joint claim, not claims of their own):"
        )
        result.bullets(sentences)

    def _figure(
        self,
        ctx: ReportContext,
        result: SectionResult,
        rows_by_model: dict[str, list[dict[str, Any]]],
        primary: str,
        reference: str,
        new: str,
        margin: float,
    ) -> None:
        if primary not in rows_by_model:
            return
        secondary = [m for m in rows_by_model if m != primary]

        def label(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [
                {**r, "finding": ctx.finding_label(r["finding"]), "interchangeable": r["claimed"]}
                for r in rows
            ]

        stem = f"forest_{new}_vs_{reference}"
        path = figures.forest_plot(
            label(rows_by_model[primary]),
            margin,
            ctx.figure_path(stem),
            title=f"Excess disagreement: {new} vs {reference}",
            secondary=label(rows_by_model[secondary[0]]) if secondary else [],
            primary_label=f"{MODEL_WORDS[primary]} (primary)",
            secondary_label=f"{MODEL_WORDS[secondary[0]]} (secondary)" if secondary else "",
        )
        result.figure(
            Figure(
                path,
                f"Excess disagreement per finding, {new} vs {reference}: 95% CI of the primary "
                f"analysis ({MODEL_WORDS[primary]}; green: interchangeable under the "
                f"multiplicity family, red: not shown), the secondary analysis in grey, and the "
                f"margin {margin:g}.",
            )
        )


def _methods(ctx: ReportContext) -> str:
    ic = ctx.protocol.interchangeability
    assert ic is not None
    settings = ctx.settings
    primary = MODEL_WORDS[settings.primary_readers]
    family = (
        "Holm-adjusted across findings"
        if settings.multiplicity == "holm"
        else "combined by the intersection-union principle (every finding must pass)"
    )
    return (
        "Interchangeability was assessed per finding with the excess-disagreement statistic of "
        "Obuchowski, Subhas and Schoenhagen (2014): for each case, the mean agreement of ordered "
        "pairs of different readers both reading the reference arm minus that of pairs in which "
        "one reader read the new arm and the other the reference arm, averaged over cases "
        f"(grades >= {ic.threshold} counted as present). The pre-specified primary analysis "
        f"treats readers as {'random' if primary == 'random readers' else 'fixed'}. Fixed-reader "
        "intervals are calibrated bootstrap-t intervals over cases (an inner bootstrap of "
        f"{N_INNER} resamples inside each of {min(ctx.n_boot, N_OUTER)} outer resamples "
        "estimates and corrects the bootstrap-t's own error; the per-case differences are "
        "skewed and the Wald interval is anti-conservative there). Random-reader intervals use "
        "the Obuchowski-Rockette variance of the reader "
        "jackknife pseudovalues with Hillis's denominator degrees of freedom and t quantiles, "
        "and are never narrower than the fixed-reader interval. The new arm was declared "
        f"interchangeable for a finding when the upper 95% bound was below the margin of "
        f"{ic.margin:g}; one-sided p-values against the margin were {family}. Both rules were "
        "chosen by simulation (benchmarks/RESULTS.md)."
    )
