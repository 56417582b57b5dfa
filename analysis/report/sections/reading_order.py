"""Reading order and fatigue: position, session and time as covariates of grades and
correctness (GEE clustered by case), with a drift plot per reader."""

from __future__ import annotations

import pandas as pd

from analysis import figures
from analysis.reading_order import (
    COVARIATES,
    UNITS,
    available_covariates,
    drift_table,
    order_effects,
    read_table,
)
from analysis.report.base import (
    Decision,
    Figure,
    Section,
    SectionResult,
    p_phrase,
    register_section,
)
from analysis.report.context import ReportContext

LIANG_ZEGER = (
    "Liang KY, Zeger SL. Longitudinal data analysis using generalized linear models. "
    "Biometrika 1986;73:13-22."
)

OUTCOME_WORDS = {
    "correct": "correct reading of a finding (against the reference standard)",
    "grade": "finding grade",
    "quality": "image-quality score",
}


@register_section
class ReadingOrderSection(Section):
    """Order and fatigue effects, and whether any was detected."""

    key = "reading_order"
    title = "Reading order and fatigue"
    order = 70

    def applies(self, ctx: ReportContext) -> bool:
        return "position" in ctx.answers.columns or "session" in ctx.answers.columns

    def compute(self, ctx: ReportContext) -> SectionResult:
        result = self.result()
        protocol = ctx.protocol
        ic = protocol.interchangeability
        quality = [
            q.id
            for q in protocol.questions
            if q.type == "likert" and q.scope != "finding" and (ic is None or q.id != ic.question)
        ]
        questions = ([ic.question] if ic is not None else []) + quality
        frame = read_table(
            ctx.analysed,
            questions=questions,
            truth=ctx.truth if ctx.truth is not None and not ctx.truth.empty else None,
            threshold=float(ic.threshold) if ic is not None else None,
            interchangeability_question=ic.question if ic is not None else None,
        )
        covariates = available_covariates(frame)
        missing = [COVARIATES[c] for c in COVARIATES if c not in covariates]
        outcomes: dict[str, pd.Series] = {}
        question = frame["question"].astype(str)
        if ic is not None:
            if "correct" in frame.columns and frame["correct"].notna().any():
                outcomes["correct"] = frame["correct"].notna()
            outcomes["grade"] = question == ic.question
        if quality:
            outcomes["quality"] = question.isin(quality)
        effects = order_effects(frame, outcomes, covariates=covariates) if covariates else []
        table = pd.DataFrame([e.to_dict() for e in effects])
        result.tables["reading_order"] = table
        detected = [e for e in effects if e.detected]
        result.data = {
            "covariates": covariates,
            "not_available": missing,
            "effects": table,
            "order_effects_detected": bool(detected),
        }
        if not covariates:
            statement = (
                "Order effects could not be assessed: the answers carry no varying position, "
                "session or reading time."
            )
        elif detected:
            listed = "; ".join(
                f"{OUTCOME_WORDS[e.outcome]} with {COVARIATES[e.covariate]} "
                f"({e.scale} {e.estimate:+.3f} {UNITS[e.covariate]}, "
                f"{p_phrase(e.p_adjusted, 'Holm-adjusted p')})"
                for e in detected
            )
            statement = f"Order effects were detected: {listed}."
        else:
            statement = (
                f"No order effect was detected: none of the {len(effects)} associations of "
                "grades, image-quality scores"
                + (" or correctness" if "correct" in outcomes else "")
                + " with position, session or reading time reached Holm-adjusted p < 0.05."
            )
        result.callout(statement)
        passed = (not detected) if covariates else None
        result.decisions.append(Decision(self.key, "order effects", statement, passed, "holm"))
        if missing:
            result.notes.append("Not in the answers (so not modelled): " + ", ".join(missing) + ".")
        result.table(
            table,
            {"outcome": "outcome", "covariate": "covariate", "scale": "scale",
             "estimate": "estimate", "ci_low": "95% CI low", "ci_high": "95% CI high",
             "p_value": "p", "p_adjusted": "p (Holm)", "detected": "detected",
             "n_reads": "reads", "n_cases": "cases"},
            caption="Each outcome on each order covariate, adjusted for arm, reader and finding "
            "(or question); GEE clustered by case, robust SE",
        )  # fmt: skip
        value = "correct" if "correct" in outcomes else "value"
        drift_source = frame
        for name in ("correct", "grade", "quality"):
            if name in outcomes:
                drift_source = frame[outcomes[name].to_numpy()]
                break
        drift = drift_table(drift_source, value)
        result.tables["reading_order_drift"] = drift
        if not drift.empty and "position" in covariates:
            ylabel = {
                "correct": "share of correct readings",
                "value": "mean grade" if "grade" in outcomes else "mean score",
            }[value]
            path = figures.drift_plot(
                drift, ctx.figure_path("reading_order_drift"), value=value, ylabel=ylabel,
                title="Drift over the reading sessions, per reader",
            )  # fmt: skip
            result.figure(
                Figure(
                    path,
                    f"Per reader: {ylabel} by position in the session (bins of positions; one "
                    "line per session; same scale in every panel).",
                )
            )
        result.methods = (
            "Reading-order and fatigue effects were assessed by modelling each outcome (the "
            "finding grades, the image-quality scores and, against the reference standard, the "
            "correctness of each reading) on one order covariate at a time (position in the "
            "session, session, time into the session, active reading time), adjusted for arm, "
            "reader and finding, with generalised estimating equations clustered by case "
            "(independence working correlation, robust SEs); p-values were Holm-adjusted across "
            "all these models."
        )
        result.references = [LIANG_ZEGER]
        return result
