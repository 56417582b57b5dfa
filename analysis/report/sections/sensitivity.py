"""The pre-specified sensitivity analyses of the interchangeability test (``[analysis]``)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from analysis import figures
from analysis.interchangeability import interchangeability_by_finding_models
from analysis.report.base import Figure, Section, SectionResult, register_section
from analysis.report.context import ReportContext
from analysis.report.sections.interchangeability import (
    MODEL_WORDS,
    TABLE_COLUMNS,
    decision_sentence,
    family_rows,
)


@register_section
class SensitivitySection(Section):
    """Each pre-specified sensitivity analysis (other measures, thresholds, reader model)."""

    key = "sensitivity"
    title = "Sensitivity analyses (pre-specified)"
    order = 30

    def applies(self, ctx: ReportContext) -> bool:
        return ctx.protocol.interchangeability is not None and bool(ctx.settings.sensitivity)

    def compute(self, ctx: ReportContext) -> SectionResult:
        result = self.result()
        ic = ctx.protocol.interchangeability
        assert ic is not None
        settings = ctx.settings
        family = settings.multiplicity
        primary_rows = {
            (r["new"], r["finding"]): r
            for r in ctx.results["interchangeability"].data[f"{settings.primary_readers}_readers"]
        } if "interchangeability" in ctx.results else {}  # fmt: skip
        analyses: list[dict[str, Any]] = []
        all_rows: list[dict[str, Any]] = []
        result.paragraph(
            "Each analysis below was pre-specified in the protocol ([analysis] sensitivity). "
            "They are sensitivity analyses: they show how the conclusions depend on choices "
            "made for the primary analysis, and none of them replaces it. The multiplicity "
            f"family ({family}) is applied within each analysis."
        )
        for index, item in enumerate(settings.sensitivity, start=1):
            readers = (
                settings.primary_readers
                if item.readers is None
                else ("random" if item.readers == "random-readers" else "fixed")
            )
            threshold = (item.threshold or ic.threshold) if item.measure == "binary" else None
            if item.margin is not None:
                margin = item.margin
            elif item.measure == "squared":
                assert settings.squared_margin is not None  # the protocol checks this
                margin = settings.squared_margin
            else:
                margin = ic.margin
            label = item.label or _describe(item.measure, threshold, readers)
            name = f"S{index}: {label}"
            unit = "squared grades" if item.measure == "squared" else "share"
            panel_rows: list[dict[str, Any]] = []
            for reference, new in ctx.comparisons:
                part = ctx.reads[ctx.reads["arm"].isin([reference, new])]
                by_model, errors = interchangeability_by_finding_models(
                    part,
                    reference,
                    new,
                    models=(readers,),  # type: ignore[arg-type]
                    threshold=threshold,
                    margin=margin,
                    n_boot=ctx.n_boot,
                    rng=ctx.rng(f"sensitivity:{index}:{reference}:{new}"),
                    measure=item.measure,
                    second_opinion=False,
                    matrices=ctx.arm_matrices(reference, new),
                )
                if readers in errors:
                    result.notes.append(f"{name} ({new} vs {reference}) not computed: "
                                        f"{errors[readers]}")  # fmt: skip
                    continue
                rows, _ = family_rows(by_model[readers], family)
                for row in rows:
                    row["analysis"] = name
                    base = primary_rows.get((row["new"], row["finding"]))
                    row["same_as_primary"] = (
                        None if base is None else bool(base["claimed"]) == bool(row["claimed"])
                    )
                panel_rows += rows
                result.heading(f"{name} — {new} vs {reference}")
                result.paragraph(
                    f"{_describe(item.measure, threshold, readers)}; margin {margin:g}"
                    + (" (squared grade units)" if item.measure == "squared" else "")
                    + "."
                )
                result.table(pd.DataFrame(rows), TABLE_COLUMNS)
                result.bullets(
                    [
                        "Sensitivity analysis: "
                        + decision_sentence(
                            row, ctx.finding_label(row["finding"]), readers, family, unit=unit
                        )
                        for row in rows
                    ]
                )
            all_rows += panel_rows
            analyses.append(
                {
                    "name": name,
                    "measure": item.measure,
                    "threshold": threshold,
                    "readers": readers,
                    "margin": margin,
                    "rows": panel_rows,
                }
            )
        result.data = {"analyses": analyses, "multiplicity": family}
        frame = pd.DataFrame(all_rows)
        result.tables["sensitivity"] = frame
        if not frame.empty and frame["same_as_primary"].notna().any():
            agree = int(frame["same_as_primary"].fillna(True).astype(bool).sum())
            result.callout(
                f"Across the {len(analyses)} pre-specified sensitivity analyses, {agree} of "
                f"{len(frame)} finding-level conclusions are the same as in the primary analysis."
            )
        panels = [
            {
                "title": a["name"],
                "rows": [
                    {**r, "finding": ctx.finding_label(r["finding"]),
                     "interchangeable": r["claimed"]}
                    for r in a["rows"]
                ],
                "margin": a["margin"],
                "xlabel": "gamma (squared grades)" if a["measure"] == "squared"
                else "gamma (share of reader pairs)",
            }
            for a in analyses
            if a["rows"]
        ]  # fmt: skip
        if panels:
            path = figures.forest_panels(
                panels, ctx.figure_path("sensitivity_forest"), title="Sensitivity analyses"
            )
            result.figure(
                Figure(
                    path,
                    "Pre-specified sensitivity analyses: excess disagreement per finding with "
                    "95% CI and each analysis's margin (green: interchangeable under the "
                    "multiplicity family).",
                )
            )
        result.methods = (
            "Pre-specified sensitivity analyses repeated the interchangeability test with other "
            "agreement measures (exact-category agreement; the squared-difference index, in "
            "squared grade units with its own margin), other dichotomisation thresholds and the "
            "other reader model, as the protocol lists them."
        )
        return result


def _describe(measure: str, threshold: int | None, readers: str) -> str:
    if measure == "exact":
        what = "exact-category agreement"
    elif measure == "squared":
        what = "squared-difference index"
    else:
        what = f"grades >= {threshold} counted as present"
    return f"{what}, {MODEL_WORDS[readers]}"
