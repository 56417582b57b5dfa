"""Image quality: the proportional-odds effect with readers and cases random (decides, with the
multiplicity family), per-reader Wilcoxon tests with effect sizes, VGC and preferences."""

from __future__ import annotations

from typing import Any

import pandas as pd

from analysis import figures
from analysis.errors import AnalysisError
from analysis.multiplicity import decide
from analysis.report.base import (
    Decision,
    Figure,
    Section,
    SectionResult,
    fmt,
    p_phrase,
    register_section,
)
from analysis.report.context import ReportContext

ALPHA = 0.05
REFERENCES = [
    "Båth M, Månsson LG. Visual grading characteristics (VGC) analysis: a non-parametric "
    "rank-invariant statistical method for image quality evaluation. Br J Radiol "
    "2007;80:169-176.",
    "Pratt JW. Remarks on zeros and ties in the Wilcoxon signed rank procedures. J Am Stat Assoc "
    "1959;54:655-667.",
    "McCullagh P. Regression models for ordinal data. J R Stat Soc B 1980;42:109-142.",
    "Kerby DS. The simple difference formula: an approach to teaching nonparametric correlation. "
    "Compr Psychol 2014;3:11.IT.3.1.",
    "Kline P, Santos A. A score based approach to wild bootstrap inference. J Econom Methods "
    "2012;1:23-41.",
    "Wilson EB. Probable inference, the law of succession, and statistical inference. "
    "J Am Stat Assoc 1927;22:209-212.",
]


def _likert_questions(ctx: ReportContext) -> list[str]:
    ic = ctx.protocol.interchangeability
    skip = ic.question if ic is not None else None
    present = set(ctx.answers["question"].astype(str))
    return [
        q.id
        for q in ctx.protocol.questions
        if q.type == "likert" and q.scope != "finding" and q.id != skip and q.id in present
    ]


def _preference_questions(ctx: ReportContext) -> list[str]:
    present = set(ctx.answers["question"].astype(str))
    return [q.id for q in ctx.protocol.questions if q.type == "preference" and q.id in present]


@register_section
class ImageQualitySection(Section):
    """Image-quality scores and preferences of the new arm(s) against the reference."""

    key = "image_quality"
    title = "Image quality"
    order = 60

    def applies(self, ctx: ReportContext) -> bool:
        return bool(_likert_questions(ctx) or _preference_questions(ctx))

    def compute(self, ctx: ReportContext) -> SectionResult:
        from analysis.reads import reads_from_answers

        result = self.result()
        likert = _likert_questions(ctx)
        exclusions: list[dict[str, str]] = []
        tables = [
            reads_from_answers(ctx.answers, ctx.protocol, question=q, source="answers")
            for q in likert
        ]
        for table in tables:
            exclusions += [e.to_dict() for e in table.exclusions]
        result.data = {"questions": likert, "exclusions": exclusions}
        if tables:
            self._scores(ctx, result, tables)
        self._preferences(ctx, result)
        result.methods = (
            "Image-quality scores were compared with a proportional-odds model of the score on "
            "the arm with reader effects; its log odds ratio is tested with readers and cases "
            f"random by a two-way (reader and case) score bootstrap ({ctx.n_boot} resamples; "
            "percentile interval) and, readers fixed, with case-clustered standard errors. Per "
            "reader, the Wilcoxon signed-rank test (Pratt's handling of zero differences) with "
            "the matched-pairs rank-biserial correlation and its case-bootstrap 95% CI; visual "
            "grading characteristics (VGC; Båth and Månsson 2007) with a case-bootstrap CI; "
            "preferences as shares with Wilson 95% CIs. The decisions per question use the "
            f"two-way test at the two-sided 5% level under the {ctx.settings.multiplicity} "
            "family."
        )
        result.references = list(REFERENCES)
        return result

    def _scores(self, ctx: ReportContext, result: SectionResult, tables: list[Any]) -> None:
        from analysis.image_quality import proportional_odds_two_way, vgc, wilcoxon_by_reader

        family = ctx.settings.multiplicity
        scores = pd.concat(
            [t.reads.assign(question=t.reads["finding"]) for t in tables], ignore_index=True
        )
        dist = figures.score_distributions(
            scores, ctx.figure_path("image_quality_scores"), arms=ctx.protocol.arm_codes
        )
        summary = (
            scores.groupby(["question", "arm"], sort=False)["value"]
            .agg(n="size", mean="mean", median="median")
            .reset_index()
        )
        wilcoxon: list[dict[str, Any]] = []
        ordinal: list[dict[str, Any]] = []
        two_way: list[dict[str, Any]] = []
        vgc_rows: list[dict[str, Any]] = []
        curves: list[dict[str, Any]] = []
        warnings: set[str] = set()
        for reference, new in ctx.comparisons:
            for table in tables:
                reads = table.reads
                name = str(reads["finding"].iloc[0])
                pair = {"question": name, "reference": reference, "new": new}
                rng = ctx.rng(f"image_quality:{name}:{reference}:{new}")
                wilcoxon += [
                    {**pair, **r.to_dict()}
                    for r in wilcoxon_by_reader(reads, reference, new, n_boot=ctx.n_boot, rng=rng)
                ]
                try:
                    clustered, boot = proportional_odds_two_way(
                        reads, reference, new, n_boot=ctx.n_boot, rng=rng
                    )
                except AnalysisError as exc:
                    result.notes.append(f"proportional odds, {name} not computed: {exc}")
                else:
                    ordinal.append({**pair, **clustered.to_dict()})
                    two_way.append({**pair, **boot.to_dict()})
                    warnings.update(boot.warnings)
                try:
                    v = vgc(reads, reference, new, n_boot=ctx.n_boot, rng=rng)
                except AnalysisError as exc:
                    result.notes.append(f"VGC, {name} not computed: {exc}")
                    continue
                vgc_rows.append(
                    {**pair, "auc": v.auc, "ci_low": v.ci_low, "ci_high": v.ci_high,
                     "n_cases": v.n_cases, "n_boot": v.n_boot}
                )  # fmt: skip
                curves.append(
                    {"question": f"{name} ({new})" if len(ctx.comparisons) > 1 else name,
                     "x": v.curve_x, "y": v.curve_y, "auc": v.auc, "ci_low": v.ci_low,
                     "ci_high": v.ci_high}
                )  # fmt: skip
        self._decide(ctx, result, two_way, family)
        wilcoxon_frame = _family_column(pd.DataFrame(wilcoxon), family)
        frames = {
            "image_quality_summary": summary,
            "image_quality_two_way": pd.DataFrame(two_way),
            "image_quality_ordinal": pd.DataFrame(ordinal),
            "image_quality_wilcoxon": wilcoxon_frame,
            "image_quality_vgc": pd.DataFrame(vgc_rows),
        }
        result.tables.update(frames)
        result.data.update(
            {"summary": summary, "wilcoxon": wilcoxon_frame, "ordinal": ordinal,
             "two_way": two_way, "warnings": sorted(warnings)}
        )  # fmt: skip
        result.data["vgc"] = [{**row, "curve": c} for row, c in zip(vgc_rows, curves, strict=True)]
        for warning in sorted(warnings):
            result.callout(f"Caution: {warning}.")
        result.heading("Proportional odds, readers and cases random (decides)")
        result.table(
            frames["image_quality_two_way"],
            {"question": "question", "new": "new", "reference": "reference",
             "odds_ratio": "odds ratio", "or_ci_low": "95% CI low", "or_ci_high": "95% CI high",
             "p_value": "p", "p_adjusted": "p adjusted", "n_readers": "readers",
             "n_cases": "cases"},
            caption="Odds ratio of a higher score on the new arm; two-way (reader and case) "
            "score bootstrap, percentile CI",
        )  # fmt: skip
        result.figure(Figure(dist, "Image-quality scores per arm (share of reads per score)."))
        result.heading("Scores per arm")
        result.table(summary)
        result.heading("Proportional odds, readers fixed (case-clustered SE)")
        result.table(
            frames["image_quality_ordinal"],
            ["question", "new", "reference", "odds_ratio", "or_ci_low", "or_ci_high",
             "p_value", "n_reads", "n_cases"],
        )  # fmt: skip
        result.heading(
            "Per reader: Wilcoxon signed-rank (Pratt) with the rank-biserial effect size"
        )
        result.table(
            wilcoxon_frame,
            {"question": "question", "reader": "reader", "n_cases": "N", "n_better": "better",
             "n_worse": "worse", "n_tied": "tied", "mean_difference": "mean difference",
             "rank_biserial": "rank-biserial r", "rank_biserial_ci_low": "r 95% low",
             "rank_biserial_ci_high": "r 95% high", "p_value": "p", "p_adjusted": "p adjusted"},
            caption="New minus reference per reader; r > 0: the new arm scored higher "
            "(p adjusted across readers and questions under the multiplicity family)",
        )  # fmt: skip
        vgc_path = figures.vgc_curves(curves, ctx.figure_path("vgc_curves"))
        result.figure(
            Figure(
                vgc_path,
                "Visual grading characteristic curves, new arm against reference (AUC > 0.5: "
                "the new arm is rated higher).",
            )
        )
        result.heading("VGC AUC (case-bootstrap 95% CI)")
        result.table(frames["image_quality_vgc"])

    def _decide(
        self,
        ctx: ReportContext,
        result: SectionResult,
        rows: list[dict[str, Any]],
        family: str,
    ) -> None:
        if not rows:
            return
        outcome = decide([r["p_value"] for r in rows], family, ALPHA)
        for row, adjusted in zip(rows, outcome.adjusted, strict=True):
            row["p_adjusted"] = adjusted
        sentences = []
        for row, rejected in zip(rows, outcome.rejected, strict=True):
            label = ctx.question_label(str(row["question"]))
            ci = (
                f"odds ratio {fmt(row['odds_ratio'], 2)}, 95% CI {fmt(row['or_ci_low'], 2)} to "
                f"{fmt(row['or_ci_high'], 2)}"
            )
            p = (
                p_phrase(row["p_adjusted"], "Holm-adjusted p")
                if family == "holm"
                else p_phrase(row["p_value"])
            )
            direction = "higher" if row["log_odds_ratio"] > 0 else "lower"
            if rejected:
                text = (
                    f"{label}: {row['new']} scored {direction} than {row['reference']} ({ci}; {p})."
                )
            else:
                text = (
                    f"{label}: no difference between {row['new']} and {row['reference']} shown "
                    f"({ci}; {p})."
                )
            sentences.append(text)
            if family == "holm":
                result.decisions.append(
                    Decision(self.key, f"image quality: {row['question']}", text, rejected, family)
                )
        if family != "holm":
            signs = {row["log_odds_ratio"] > 0 for row in rows}
            joint = bool(outcome.joint) and len(signs) == 1
            direction = "higher" if signs == {True} else "lower"
            text = (
                f"Image quality, all {len(rows)} questions jointly: the new arm scored {direction} "
                "on every question (intersection-union test)."
                if joint
                else f"Image quality, all {len(rows)} questions jointly: a difference in the same "
                "direction on every question is not shown (intersection-union test)."
            )
            result.decisions.append(Decision(self.key, "image quality: all questions", text,
                                             joint, family))  # fmt: skip
            result.callout(text)
        result.heading("Decisions per question")
        result.bullets(sentences)

    def _preferences(self, ctx: ReportContext, result: SectionResult) -> None:
        from analysis.image_quality import preference_by_reader

        rows: list[dict[str, Any]] = []
        choices = [*ctx.protocol.arm_codes, "equal"]
        for q in _preference_questions(ctx):
            part = ctx.analysed[ctx.analysed["question"].astype(str) == q].dropna(subset=["value"])
            rows += [
                {"question": q, **r.to_dict()}
                for r in preference_by_reader(part.assign(value=part["value"].astype(str)), choices)
            ]
        if not rows:
            return
        prefs = pd.DataFrame(rows)
        result.tables["preferences"] = prefs
        result.data["preferences"] = rows
        result.heading("Preference (all readers; Wilson 95% CI)")
        result.table(prefs[prefs["reader"].isna()])


def _family_column(frame: pd.DataFrame, family: str) -> pd.DataFrame:
    """Add ``p_adjusted``: the family applied across every row (readers x questions)."""
    if frame.empty:
        return frame
    outcome = decide(list(frame["p_value"]), family, ALPHA)
    return frame.assign(p_adjusted=outcome.adjusted)
