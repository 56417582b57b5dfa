"""Reader heterogeneity: each reader's excess disagreement and the variance components (the
reader-pair agreement within and across arms is in the agreement section)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from analysis import figures
from analysis.errors import AnalysisError
from analysis.interchangeability import per_reader_excess_disagreement
from analysis.report.base import Figure, Section, SectionResult, register_section
from analysis.report.context import ReportContext


@register_section
class HeterogeneitySection(Section):
    """Per-reader gamma and the random-reader variance components."""

    key = "reader_heterogeneity"
    title = "Reader heterogeneity"
    order = 40

    def applies(self, ctx: ReportContext) -> bool:
        return ctx.protocol.interchangeability is not None

    def compute(self, ctx: ReportContext) -> SectionResult:
        result = self.result()
        ic = ctx.protocol.interchangeability
        assert ic is not None
        per_reader_rows: list[dict[str, Any]] = []
        for reference, new in ctx.comparisons:
            matrices = ctx.arm_matrices(reference, new)
            if matrices is None:
                result.notes.append(
                    f"{new} vs {reference}: some finding's reads are incomplete (see "
                    "Interchangeability); per-reader values not computed"
                )
                continue
            for finding, arrays in matrices.items():
                try:
                    scores = arrays.scores(reference, new, float(ic.threshold), "binary")
                except AnalysisError as exc:
                    result.notes.append(f"{finding}: {exc}")
                    continue
                table = per_reader_excess_disagreement(scores)
                per_reader_rows += [
                    {
                        "finding": str(finding),
                        "reference": reference,
                        "new": new,
                        **{str(k): v for k, v in r.items()},
                    }
                    for r in table.to_dict(orient="records")
                ]
            if per_reader_rows:
                self._per_reader_figure(ctx, result, per_reader_rows, reference, new)
        per_reader = pd.DataFrame(per_reader_rows)
        result.tables["per_reader_excess_disagreement"] = per_reader
        result.data["per_reader"] = per_reader
        components = self._components(ctx)
        result.data["variance_components"] = components
        result.tables["variance_components"] = components
        result.heading("Variance components of gamma (random readers)")
        result.table(
            components,
            {
                "finding": "finding",
                "new": "new",
                "excess_disagreement": "gamma",
                "case_var": "case variance",
                "reader_var": "reader variance",
                "reader_share": "reader share",
                "ms_r": "MS(R) pseudovalues",
                "cov2": "Cov2",
                "df": "Hillis df",
            },
            digits=5,
            percent=["reader_share"],
            caption=(
                "Variance of gamma: what the cases give (the fixed-reader variance) and what "
                "the readers add (random readers); MS(R) and Cov2: the Obuchowski-Rockette "
                "pieces of the reader pseudovalues"
            ),
        )
        result.paragraph(
            "Each reader's excess disagreement: how much more that reader disagrees with the "
            "other readers' reference reads when reading the new arm than when reading the "
            "reference (mean over findings in the heat map; per finding with a case-jackknife "
            "95% CI in per_reader_excess_disagreement.csv). A reader far from the others is what "
            "makes the random-reader interval wider than the fixed-reader one; the reader-pair "
            "heat maps within and across arms are under Reader agreement."
        )
        result.methods = (
            "Reader heterogeneity is shown as each reader's own excess disagreement (the mean "
            "over the other readers of the agreement of the reader's reference reads with their "
            "reference reads minus that of the reader's new-arm reads), as the split of the "
            "random-reader variance into its case and reader parts."
        )
        return result

    def _per_reader_figure(
        self,
        ctx: ReportContext,
        result: SectionResult,
        rows: list[dict[str, Any]],
        reference: str,
        new: str,
    ) -> None:
        frame = pd.DataFrame([r for r in rows if r["new"] == new and r["reference"] == reference])
        if frame.empty:
            return
        matrix = frame.pivot(index="finding", columns="reader", values="excess_disagreement")
        matrix = matrix.reindex(index=list(dict.fromkeys(frame["finding"])))
        matrix.index = [ctx.finding_label(f) for f in matrix.index]
        stem = f"per_reader_gamma_{new}_vs_{reference}"
        path = figures.per_reader_heatmap(
            matrix,
            ctx.figure_path(stem),
            title=f"Each reader's excess disagreement, {new} vs {reference}",
            label="excess disagreement (share of reader pairs; > 0: more on the new arm)",
        )
        result.figure(
            Figure(
                path,
                f"Each reader's excess disagreement per finding, {new} vs {reference} "
                "(red: the reader disagrees more with colleagues on the new arm).",
            )
        )

    def _components(self, ctx: ReportContext) -> pd.DataFrame:
        columns = ["finding", "new", "reference", "excess_disagreement", "case_var",
                   "reader_var", "reader_share", "ms_r", "cov2", "df"]  # fmt: skip
        ic_result = ctx.results.get("interchangeability")
        rows = ic_result.data.get("random_readers", []) if ic_result is not None else []
        frame = pd.DataFrame(rows)
        if frame.empty:
            return pd.DataFrame(columns=columns)
        total = frame["case_var"] + frame["reader_var"]
        frame["reader_share"] = np.where(total > 0, frame["reader_var"] / total, 0.0)
        return frame[columns]
