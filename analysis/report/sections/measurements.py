"""Quantitative measurements (SNR, CNR, distances, ROI values): agreement of each new arm with
the reference per measurement (Bland-Altman, ICC(A,1), the mixed-model difference and its TOST
under the protocol's multiplicity family), with the noise caveat of magnitude-image SNR."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from analysis import figures
from analysis.errors import AnalysisError
from analysis.measurement_agreement import (
    DIETRICH,
    GUDBJARTSSON_PATZ,
    POOLED,
    REFERENCES,
    MeasurementComparison,
    compare_measurement,
)
from analysis.multiplicity import HOLM_REFERENCE, IUT_REFERENCE, decide
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

if TYPE_CHECKING:
    from studies.protocol import Measurement

ALPHA = 0.05
NOISE_CAVEAT = (
    "SNR and CNR here are indices measured on the images, not the true signal-to-noise ratio. "
    "In magnitude images the noise is Rician, not Gaussian: at low SNR the background SD "
    "underestimates the noise and the tissue mean is biased upwards (Gudbjartsson and Patz "
    "1995). With multi-channel coils, parallel imaging and deep-learning (or any regularised) "
    "reconstruction the noise varies across the image and is filtered, so the SD of a "
    "background ROI does not measure the noise in the tissue (Dietrich et al. 2007); a "
    "reconstruction that smooths the background raises this index without raising the true "
    "SNR. The comparison is of the measured index between arms."
)

TABLE_COLUMNS = {
    "reader": "reader",
    "n": "N",
    "bias_ci": "bias [95% CI]",
    "loa_low_ci": "lower LoA [95% CI]",
    "loa_high_ci": "upper LoA [95% CI]",
    "icc_ci": "ICC(A,1) [95% CI]",
    "mm_ci": "mixed-model difference [95% CI]",
    "margin": "margin",
    "p_tost": "p TOST",
    "p_adjusted": "p adjusted",
    "decision": "decision",
}


def _ci(value: Any, low: Any, high: Any, digits: int = 3) -> str:
    return f"{fmt(value, digits)} [{fmt(low, digits)}, {fmt(high, digits)}]"


def _declared(ctx: ReportContext) -> list[Measurement]:
    return list(getattr(ctx.protocol, "measurements", []) or [])


@register_section
class MeasurementSection(Section):
    """Per measurement and new arm: Bland-Altman, ICC, mixed-model TOST; decisions under the
    family across every arm x measurement."""

    key = "measurements"
    title = "Quantitative measurements"
    order = 65

    def applies(self, ctx: ReportContext) -> bool:
        return bool(_declared(ctx))

    def compute(self, ctx: ReportContext) -> SectionResult:
        result = self.result()
        frame = ctx.measurements
        if frame is None or frame.empty:
            raise AnalysisError(
                "the protocol declares [[measurements]] but no measurement table was given "
                "(studies.export.measurements_frame, or --measurements CSV)"
            )
        training = set(ctx.protocol.training_cases)
        frame = frame[~frame["case"].astype(str).isin(training)]
        family = ctx.settings.multiplicity
        present = set(frame["measurement"].astype(str))
        comparisons: list[MeasurementComparison] = []
        labels: dict[str, str] = {}
        for m in _declared(ctx):
            # a per-series question's measurement is named "<id>@<series>", one per series
            names = sorted(n for n in present if n == m.id or n.startswith(f"{m.id}@"))
            if not names:
                result.notes.append(f"{m.id}: no values in the measurement table")
                continue
            for name in names:
                series = name.partition("@")[2]
                labels[name] = (m.label or m.id) + (f" ({series})" if series else "")
                for reference, new in ctx.comparisons:
                    try:
                        comparisons.append(
                            compare_measurement(
                                frame,
                                name,
                                reference,
                                new,
                                margin=m.margin or math.inf,
                                relative=m.relative,
                                unit=m.unit,
                            )
                        )
                    except AnalysisError as exc:
                        result.notes.append(f"{name}, {new} vs {reference} not computed: {exc}")
        undeclared = sorted(present - set(labels))
        if undeclared:
            result.notes.append(
                f"measurements not in the protocol, left out: {', '.join(undeclared)}"
            )
        if not comparisons:
            raise AnalysisError("no measurement could be compared between arms")
        rows = [row for c in comparisons for row in c.rows()]
        table = pd.DataFrame(rows)
        tested = [c for c in comparisons if math.isfinite(c.margin)]
        outcome = decide([c.equivalence[POOLED].p_tost for c in tested], family, ALPHA)
        adjusted = {
            (c.measurement, c.new): (p, claim)
            for c, p, claim in zip(tested, outcome.adjusted, outcome.claims, strict=True)
        }
        table["p_adjusted"] = [
            adjusted.get((r["measurement"], r["new"]), (None, None))[0]
            if r["reader"] == POOLED else None
            for r in rows
        ]  # fmt: skip
        result.tables["measurement_agreement"] = table
        result.data = {
            "multiplicity": family,
            "alpha": ALPHA,
            "comparisons": [
                {"measurement": c.measurement, "reference": c.reference, "new": c.new,
                 "unit": c.unit, "margin": c.margin if math.isfinite(c.margin) else None,
                 "reference_mean": c.reference_mean, "new_mean": c.new_mean,
                 "n_dropped_cases": c.n_dropped_cases,
                 "equivalent": adjusted.get((c.measurement, c.new), (None, None))[1],
                 "rows": c.rows()}
                for c in comparisons
            ],
        }  # fmt: skip
        self._decisions(ctx, result, tested, outcome.adjusted, outcome.claims, family, labels)
        if any(m.kind in ("snr", "cnr") for m in _declared(ctx)):
            result.callout(NOISE_CAVEAT)
        for new in dict.fromkeys(c.new for c in comparisons):
            result.heading(f"{new} vs {ctx.protocol.reference_arm.code}")
            for c in (c for c in comparisons if c.new == new):
                self._block(ctx, result, c, labels.get(c.measurement, c.measurement), adjusted)
        result.methods = _methods(ctx, family)
        result.references = [*REFERENCES, GUDBJARTSSON_PATZ, DIETRICH] + (
            [HOLM_REFERENCE] if family == "holm" else [IUT_REFERENCE]
        )
        return result

    def _decisions(
        self,
        ctx: ReportContext,
        result: SectionResult,
        tested: list[MeasurementComparison],
        adjusted: list[float],
        claims: list[bool],
        family: str,
        labels: dict[str, str],
    ) -> None:
        if not tested:
            result.paragraph("No measurement declares an equivalence margin: nothing is decided.")
            return
        sentences = []
        for c, p_adj, claim in zip(tested, adjusted, claims, strict=True):
            e = c.equivalence[POOLED]
            unit = f" {c.unit}" if c.unit else ""
            p = (
                p_phrase(p_adj, "Holm-adjusted TOST p")
                if family == "holm"
                else p_phrase(e.p_tost, "TOST p")
            )
            detail = (
                f"difference {fmt(e.estimate)}{unit}, 95% CI {fmt(e.ci_low)} to "
                f"{fmt(e.ci_high)}; margin ±{fmt(c.margin)}{unit}; {p}"
            )
            label = labels.get(c.measurement, c.measurement)
            own = e.p_tost < ALPHA
            if family == "holm" and claim:
                text = f"{label}: {c.new} is equivalent to {c.reference} ({detail})."
            elif family == "holm":
                text = (
                    f"{label}: equivalence of {c.new} with {c.reference} is not shown ({detail})."
                )
            else:
                verdict = "within the margin" if own else "not shown within the margin"
                text = f"{label}, {c.new} vs {c.reference}: {verdict} ({detail})."
            sentences.append(text)
            if family == "holm":
                result.decisions.append(
                    Decision(
                        self.key,
                        f"{c.new} equivalent to {c.reference}: {c.measurement}",
                        text,
                        bool(claim),
                        family,
                    )
                )
        result.heading(
            "Decisions (TOST of the mixed-model difference at 5%, "
            + ("Holm across arms x measurements)" if family == "holm" else "intersection-union)")
        )
        if family != "holm":
            joint = bool(claims and claims[0])
            text = (
                f"Measurements, all {len(tested)} arm x measurement comparisons jointly: "
                + ("every new arm is equivalent to the reference on every measurement"
                   if joint else "equivalence on every one is not shown")
                + " (intersection-union test)."
            )  # fmt: skip
            result.decisions.append(Decision(self.key, "measurements: all", text, joint, family))
            result.callout(text)
        result.bullets(sentences)

    def _block(
        self,
        ctx: ReportContext,
        result: SectionResult,
        c: MeasurementComparison,
        label: str,
        adjusted: dict[tuple[str, str], tuple[Any, Any]],
    ) -> None:
        unit = f" ({c.unit})" if c.unit else ""
        result.heading(f"{label}{unit}: {c.new} vs {c.reference}")
        p_adj, claim = adjusted.get((c.measurement, c.new), (None, None))
        view = []
        for row in c.rows():
            pooled = row["reader"] == POOLED
            view.append({
                "reader": row["reader"],
                "n": row["ba_n_cases"] if not pooled else
                f"{row['ba_n_cases']} x {row['ba_n_readers']}",
                "bias_ci": _ci(row["ba_bias"], row["ba_bias_ci_low"], row["ba_bias_ci_high"]),
                "loa_low_ci": _ci(row["ba_loa_low"], row["ba_loa_low_ci_low"],
                                  row["ba_loa_low_ci_high"]),
                "loa_high_ci": _ci(row["ba_loa_high"], row["ba_loa_high_ci_low"],
                                   row["ba_loa_high_ci_high"]),
                "icc_ci": _ci(row.get("icc"), row.get("icc_ci_low"), row.get("icc_ci_high")),
                "mm_ci": _ci(row.get("mm_estimate"), row.get("mm_ci_low"), row.get("mm_ci_high")),
                "margin": c.margin if math.isfinite(c.margin) else None,
                "p_tost": row.get("mm_p_tost") if math.isfinite(c.margin) else None,
                "p_adjusted": p_adj if pooled else None,
                "decision": ("equivalent" if claim else "not shown") if pooled and claim
                is not None else "–",
            })  # fmt: skip
        result.table(
            pd.DataFrame(view),
            TABLE_COLUMNS,
            caption=(
                f"Differences {c.new} - {c.reference}{unit}. Per reader: cases random (t and "
                "chi-square intervals); all readers: cases and readers random (variance "
                "components, Satterthwaite t for the bias, MOVER for the limits; REML mixed "
                "model for the difference). p TOST per reader is descriptive; the decision is "
                "the pooled row's under the multiplicity family."
            ),
        )
        pooled = c.equivalence[POOLED]
        notes = [f"mixed model: {pooled.method}"]
        if c.n_dropped_cases:
            notes.append(
                f"{c.n_dropped_cases} case(s) not measured by every reader on both arms are left "
                "out of the pooled Bland-Altman and variance components (the mixed model keeps "
                "them)"
            )
        if c.margin is not None and math.isfinite(c.margin):
            mean_text = f"reference mean {fmt(c.reference_mean)}, {c.new} mean {fmt(c.new_mean)}"
            notes.append(mean_text)
        result.bullets(notes)
        stem = f"measurement_{c.measurement.replace('@', '-')}_{c.new}_vs_{c.reference}"
        ba = c.bland_altman[POOLED].to_dict()
        margin = c.margin if math.isfinite(c.margin) else None
        path = figures.bland_altman_plot(
            c.pairs, ba, ctx.figure_path(f"bland_altman_{stem}"),
            title=f"{label}: {c.new} vs {c.reference}", unit=c.unit, margin=margin,
        )  # fmt: skip
        result.figure(
            Figure(
                path,
                f"Bland-Altman plot of {label}, {c.new} - {c.reference}: one point per case and "
                "reader; bias (solid) and 95% limits of agreement (dashed) of all readers with "
                "their 95% CIs (shaded)" + (f"; dotted: the margin ±{margin:.3g}." if margin
                                            else "."),
            )
        )  # fmt: skip
        path = figures.identity_scatter(
            c.pairs, ctx.figure_path(f"scatter_{stem}"), reference=c.reference, new=c.new,
            title=f"{label}: {c.new} against {c.reference}", unit=c.unit,
        )  # fmt: skip
        result.figure(
            Figure(path, f"{label}: {c.new} against {c.reference}, with the identity line.")
        )


def _methods(ctx: ReportContext, family: str) -> str:
    family_words = (
        "Holm-adjusted across every new arm x measurement comparison"
        if family == "holm"
        else "combined by the intersection-union principle over every new arm x measurement "
        "(all must pass)"
    )
    return (
        "Each declared measurement was compared between each new arm and the reference on the "
        "paired differences of the same case measured by the same reader. Bland-Altman bias "
        "and 95% limits of agreement for repeated measures (Bland and Altman 1999, 2007; "
        "Carstensen et al. 2008) with cases and readers random: variance components of the "
        "case x reader table of differences by two-way ANOVA (truncated at zero), the bias's "
        "CI with t on Satterthwaite's degrees of freedom and the limits' CIs by MOVER (Zou "
        "2013); per reader the classical analysis with cases random. Agreement of the values "
        "themselves as the two-way random, absolute-agreement, single-measure ICC(A,1) "
        "(McGraw and Wong 1996) with its F-based CI, per reader and over all (case, reader) "
        "pairs. The mean difference was estimated by a linear mixed model with crossed "
        "random case and reader effects (REML, every measured pair) and tested for "
        "equivalence against the protocol's margin by two one-sided t tests (Schuirmann "
        f"1987) at the 5% level, {family_words}."
    )
