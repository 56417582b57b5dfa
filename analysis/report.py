"""The study report: ``results.json``, CSV tables, PNG figures and a self-contained ``report.html``.

:func:`build_report` runs every analysis that the protocol and the data allow:

- interchangeability per finding (Obuchowski, Subhas & Schoenhagen 2014) for each non-reference
  arm against the reference arm, fixed readers (the decision) and random readers alongside, with
  Holm-adjusted p-values across findings;
- image quality per likert question that is not the interchangeability question (Wilcoxon
  signed-rank per reader, proportional odds with case-clustered errors, VGC AUC) and preference
  proportions (paired design);
- reader agreement (Fleiss kappa per arm, Cohen weighted kappa within reader between arms, Gwet);
- where the cases carry a reference standard: sensitivity/specificity per reader and arm (Wilson
  CIs) and the Obuchowski-Rockette MRMC analysis (Hillis ddf) of AUC, sensitivity and specificity.

Every file is written to a temporary name and renamed, so an interrupted run never leaves a
half-written file behind.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import numpy as np
import pandas as pd

from analysis import figures
from analysis.errors import AnalysisError
from studies.progress import ProgressCallback, no_progress

if TYPE_CHECKING:
    from studies.protocol import Protocol

REFERENCES: tuple[str, ...] = (
    "Obuchowski NA, Subhas N, Schoenhagen P. Testing for interchangeability of imaging tests. "
    "Acad Radiol 2014;21:1483-1489.",
    "Obuchowski NA, Rockette HE. Hypothesis testing of diagnostic accuracy for multiple readers "
    "and multiple tests: an ANOVA approach with dependent observations. Commun Stat Simul Comput "
    "1995;24:285-308.",
    "Hillis SL. A comparison of denominator degrees of freedom methods for multiple observer ROC "
    "analysis. Stat Med 2007;26:596-619.",
    "Hillis SL, Berbaum KS, Metz CE. Recent developments in the Dorfman-Berbaum-Metz procedure "
    "for multireader ROC study analysis. Acad Radiol 2008;15:647-661.",
    "Båth M, Månsson LG. Visual grading characteristics (VGC) analysis: a non-parametric "
    "rank-invariant statistical method for image quality evaluation. Br J Radiol 2007;80:169-176.",
    "Fleiss JL. Measuring nominal scale agreement among many raters. Psychol Bull 1971;76:378-382.",
    "Cohen J. Weighted kappa. Psychol Bull 1968;70:213-220.",
    "Gwet KL. Computing inter-rater reliability and its variance in the presence of high "
    "agreement. Br J Math Stat Psychol 2008;61:29-48.",
    "Holm S. A simple sequentially rejective multiple test procedure. Scand J Stat 1979;6:65-70.",
    "Wilson EB. Probable inference, the law of succession, and statistical inference. "
    "J Am Stat Assoc 1927;22:209-212.",
    "Pratt JW. Remarks on zeros and ties in the Wilcoxon signed rank procedures. J Am Stat Assoc "
    "1959;54:655-667.",
    "McCullagh P. Regression models for ordinal data. J R Stat Soc B 1980;42:109-142.",
)


_T = TypeVar("_T")
_P = ParamSpec("_P")


@dataclass
class _Section:
    """What one analysis adds to the report."""

    key: str
    title: str
    data: Any = None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)
    html: str = ""
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------


def _json_ready(value: Any) -> Any:
    """Numpy -> Python, NaN/inf -> None, dataclasses with to_dict -> dicts, frames -> records."""
    if hasattr(value, "to_dict") and not isinstance(value, pd.DataFrame | pd.Series | dict):
        return _json_ready(value.to_dict())
    if isinstance(value, pd.DataFrame):
        return _json_ready(value.to_dict(orient="records"))
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _attempt(
    notes: list[str], label: str, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs
) -> _T | None:
    """Run one analysis; when the data do not allow it, note why and return None."""
    try:
        return fn(*args, **kwargs)
    except AnalysisError as exc:
        notes.append(f"{label} not computed: {exc}")
        return None


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if not math.isfinite(float(value)):
            return "–"
        return f"{float(value):.{digits}f}"
    return str(value)


def _pct(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "–"
    return f"{100 * number:.2f}%" if math.isfinite(number) else "–"


def _table_html(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> str:
    if frame.empty:
        return "<p><em>No rows.</em></p>"
    cols = [c for c in (columns or list(frame.columns)) if c in frame.columns]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(row[c]))}</td>" for c in cols) + "</tr>"
        for _, row in frame.iterrows()
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure_html(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _arm_label(protocol: Protocol, code: str) -> str:
    try:
        return f"{code} ({protocol.arm(code).description})"
    except Exception:  # an arm outside the protocol only reaches here from a CSV export
        return code


# ---------------------------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------------------------


def _interchangeability(
    protocol: Protocol,
    reads: pd.DataFrame,
    comparisons: list[tuple[str, str]],
    out_dir: Path,
    *,
    n_boot: int,
    rng: np.random.Generator,
) -> _Section:
    from analysis.interchangeability import interchangeability_by_finding

    ic = protocol.interchangeability
    assert ic is not None
    section = _Section("interchangeability", "Interchangeability per finding")
    labels = {f.id: f.label for f in protocol.findings}
    fixed_rows: list[dict[str, Any]] = []
    random_rows: list[dict[str, Any]] = []
    html_parts: list[str] = []
    for reference, new in comparisons:
        part = reads[reads["arm"].isin([reference, new])]
        fixed = interchangeability_by_finding(
            part,
            reference,
            new,
            threshold=ic.threshold,
            margin=ic.margin,
            readers="fixed",
            n_boot=n_boot,
            rng=rng,
            holm=True,
        )
        random = (
            _attempt(
                section.notes,
                f"random-reader interchangeability, {new} vs {reference}",
                interchangeability_by_finding,
                part,
                reference,
                new,
                threshold=ic.threshold,
                margin=ic.margin,
                readers="random",
                n_boot=n_boot,
                rng=rng,
                holm=True,
            )
            or []
        )
        rows = [r.to_dict() for r in fixed]
        fixed_rows += rows
        random_rows += [r.to_dict() for r in random]
        stem = f"forest_{new}_vs_{reference}"
        section.figures[stem] = figures.forest_plot(
            [{**r, "finding": labels.get(str(r["finding"]), r["finding"])} for r in rows],
            ic.margin,
            out_dir / f"{stem}.png",
            title=f"Excess disagreement: {new} vs {reference} (fixed readers)",
        )
        decisions = "".join(
            f"<li>{html.escape(_decision_sentence(r, labels, protocol))}</li>" for r in rows
        )
        html_parts.append(
            f"<h3>{html.escape(new)} vs {html.escape(reference)}</h3>"
            + _figure_html(
                section.figures[stem],
                f"Excess disagreement per finding, {new} vs "
                f"{reference}, with 95% CI (fixed readers) and the margin {ic.margin:g}",
            )
            + f"<p>Decision per finding (fixed readers, two-sided 95% CI upper bound below the "
            f"margin {ic.margin:g}):</p><ul>{decisions}</ul>"
        )
    columns = [
        "finding", "reference", "new", "excess_disagreement", "se", "ci_low", "ci_high",
        "a_rr", "a_tr", "a_tt", "n_cases", "n_readers", "margin", "interchangeable", "p_value",
        "p_holm", "interchangeable_holm", "boot_ci_low", "boot_ci_high",
    ]  # fmt: skip
    fixed_frame = pd.DataFrame(fixed_rows)
    random_frame = pd.DataFrame(random_rows)
    section.tables["interchangeability"] = fixed_frame
    section.tables["interchangeability_random_readers"] = random_frame
    section.data = {
        "question": ic.question,
        "threshold": ic.threshold,
        "margin": ic.margin,
        "fixed_readers": fixed_rows,
        "random_readers": random_rows,
    }
    html_parts.append("<h3>Fixed readers (decision)</h3>" + _table_html(fixed_frame, columns))
    html_parts.append(
        "<h3>Random readers (generalises to other readers)</h3>"
        + _table_html(random_frame, columns)
    )
    section.html = "".join(html_parts)
    return section


def _decision_sentence(
    row: Mapping[str, Any], labels: Mapping[str, str], protocol: Protocol
) -> str:
    finding = labels.get(str(row["finding"]), str(row["finding"]))
    new, reference = str(row["new"]), str(row["reference"])
    est, low, high = row.get("excess_disagreement"), row.get("ci_low"), row.get("ci_high")
    margin = float(row["margin"])
    ci = f"excess disagreement {_pct(est)}, 95% CI {_pct(low)} to {_pct(high)}"
    if high is None:
        return f"{finding}: no decision ({ci}; the interval could not be computed)."
    if row.get("interchangeable"):
        return (
            f"{finding}: {new} is interchangeable with {reference} ({ci}; the upper bound is "
            f"below the {_pct(margin)} margin)."
        )
    return (
        f"{finding}: interchangeability of {new} with {reference} is not shown ({ci}; the upper "
        f"bound is not below the {_pct(margin)} margin)."
    )


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


def _agreement(
    protocol: Protocol,
    reads: pd.DataFrame,
    comparisons: list[tuple[str, str]],
    out_dir: Path,
    *,
    n_boot: int,
    rng: np.random.Generator,
) -> _Section:
    from analysis.agreement import cohen_kappa_between_arms, fleiss_kappa_by_arm, gwet_by_arm

    ic = protocol.interchangeability
    assert ic is not None
    section = _Section("agreement", "Reader agreement")
    threshold = float(ic.threshold)
    points = protocol.question(ic.question).points
    grades = list(range(1, points + 1)) if points else None
    arms = protocol.arm_codes
    matrices = {arm: _pair_agreement(reads, arm, threshold) for arm in arms}
    section.figures["agreement_heatmaps"] = figures.agreement_heatmaps(
        matrices,
        out_dir / "agreement_heatmaps.png",
        title="Reader-pair agreement on the findings (grade >= threshold), per arm",
        label="share of cases that agree (mean over findings)",
    )
    pair_rows = [
        {"arm": arm, "reader_a": a, "reader_b": b, "agreement": float(mat.loc[a, b])}
        for arm, mat in matrices.items()
        for i, a in enumerate(mat.index)
        for b in list(mat.columns)[i + 1 :]
    ]
    present = reads.assign(value=(reads["value"] >= threshold).astype(float))
    notes = section.notes
    binary = [0.0, 1.0]
    fleiss = (
        _attempt(
            notes,
            "Fleiss kappa",
            fleiss_kappa_by_arm,
            present,
            categories=binary,
            n_boot=n_boot,
            rng=rng,
        )
        or []
    )
    ac1 = _attempt(notes, "Gwet AC1", gwet_by_arm, present, categories=binary) or []
    ac2 = (
        _attempt(notes, "Gwet AC2", gwet_by_arm, reads, categories=grades, weights="quadratic")
        or []
    )
    coefficients = pd.DataFrame(
        [r.to_dict() for r in fleiss]
        + [{**r.to_dict(), "coefficient": "Gwet AC1"} for r in ac1]
        + [{**r.to_dict(), "coefficient": "Gwet AC2 (quadratic, grades)"} for r in ac2]
    )
    cohen_rows: list[dict[str, Any]] = []
    for reference, new in comparisons:
        cohen_rows += [
            r.to_dict()
            for r in _attempt(
                notes,
                f"Cohen's kappa {new} vs {reference}",
                cohen_kappa_between_arms,
                reads,
                reference,
                new,
                categories=grades,
                weights="quadratic",
            )
            or []
        ]
    cohen = pd.DataFrame(cohen_rows)
    section.tables["agreement_reader_pairs"] = pd.DataFrame(pair_rows)
    section.tables["agreement_coefficients"] = coefficients
    section.tables["agreement_cohen_between_arms"] = cohen
    section.data = {
        "reader_pairs": pair_rows,
        "coefficients": coefficients,
        "cohen_between_arms": cohen,
    }
    section.html = (
        _figure_html(
            section.figures["agreement_heatmaps"],
            "Reader-pair agreement per arm (share of cases with the same dichotomised grade, "
            "mean over findings)",
        )
        + "<h3>Agreement among the readers of each arm (findings present/absent; AC2 on the "
        "grades)</h3>"
        + _table_html(
            coefficients,
            ["finding", "arm", "coefficient", "value", "se", "ci_low", "ci_high",
             "boot_ci_low", "boot_ci_high", "n_cases", "n_readers"],
        )
        + "<h3>Each reader with themself between arms (Cohen's kappa, quadratic weights)</h3>"
        + _table_html(
            cohen,
            ["finding", "reader", "first_arm", "second_arm", "kappa", "ci_low", "ci_high",
             "observed_agreement", "n_cases"],
        )
    )  # fmt: skip
    return section


def _image_quality(
    protocol: Protocol,
    answers: pd.DataFrame,
    comparisons: list[tuple[str, str]],
    out_dir: Path,
    *,
    n_boot: int,
    rng: np.random.Generator,
) -> _Section | None:
    from analysis.image_quality import (
        preference_by_reader,
        proportional_odds,
        vgc,
        wilcoxon_by_reader,
    )
    from analysis.reads import reads_from_answers

    ic_question = protocol.interchangeability.question if protocol.interchangeability else None
    likert = [
        q for q in protocol.questions
        if q.type == "likert" and q.scope != "finding" and q.id != ic_question
    ]  # fmt: skip
    preference = [q for q in protocol.questions if q.type == "preference"]
    present = set(answers["question"].astype(str))
    likert = [q for q in likert if q.id in present]
    preference = [q for q in preference if q.id in present]
    if not likert and not preference:
        return None
    section = _Section("image_quality", "Image quality")
    exclusions: list[dict[str, str]] = []
    score_tables = [
        reads_from_answers(answers, protocol, question=q.id, source="answers") for q in likert
    ]
    for table in score_tables:
        exclusions += [e.to_dict() for e in table.exclusions]
    data: dict[str, Any] = {"questions": [q.id for q in likert], "exclusions": exclusions}
    html_parts: list[str] = []
    notes: list[str] = []
    if score_tables:
        scores = pd.concat(
            [t.reads.assign(question=t.reads["finding"]) for t in score_tables], ignore_index=True
        )
        section.figures["image_quality_scores"] = figures.score_distributions(
            scores, out_dir / "image_quality_scores.png", arms=protocol.arm_codes
        )
        summary = (
            scores.groupby(["question", "arm"], sort=False)["value"]
            .agg(n="size", mean="mean", median="median")
            .reset_index()
        )
        wilcoxon: list[dict[str, Any]] = []
        ordinal: list[dict[str, Any]] = []
        vgc_rows: list[dict[str, Any]] = []
        curves: list[dict[str, Any]] = []
        for reference, new in comparisons:
            for table in score_tables:
                reads = table.reads
                name = str(reads["finding"].iloc[0])
                pair = {"question": name, "reference": reference, "new": new}
                wilcoxon += [
                    {**pair, **r.to_dict()} for r in wilcoxon_by_reader(reads, reference, new)
                ]
                po = _attempt(
                    notes, f"proportional odds, {name}", proportional_odds, reads, reference, new
                )
                if po is not None:
                    ordinal.append({**pair, **po.to_dict()})
                v = _attempt(
                    notes, f"VGC, {name}", vgc, reads, reference, new, n_boot=n_boot, rng=rng
                )
                if v is None:
                    continue
                vgc_rows.append(
                    {**pair, "auc": v.auc, "ci_low": v.ci_low, "ci_high": v.ci_high,
                     "n_cases": v.n_cases, "n_boot": v.n_boot}
                )  # fmt: skip
                curves.append(
                    {"question": f"{name} ({new})" if len(comparisons) > 1 else name,
                     "x": v.curve_x, "y": v.curve_y, "auc": v.auc, "ci_low": v.ci_low,
                     "ci_high": v.ci_high}
                )  # fmt: skip
        tables = {
            "image_quality_summary": summary,
            "image_quality_wilcoxon": pd.DataFrame(wilcoxon),
            "image_quality_ordinal": pd.DataFrame(ordinal),
            "image_quality_vgc": pd.DataFrame(vgc_rows),
        }
        section.tables.update(tables)
        data.update({"summary": summary, "wilcoxon": wilcoxon, "ordinal": ordinal})
        data["vgc"] = [{**row, "curve": c} for row, c in zip(vgc_rows, curves, strict=True)]
        section.figures["vgc_curves"] = figures.vgc_curves(curves, out_dir / "vgc_curves.png")
        html_parts += [
            _figure_html(section.figures["image_quality_scores"], "Image-quality scores per arm"),
            _figure_html(
                section.figures["vgc_curves"],
                "Visual grading characteristic curves, new arm against reference (AUC > 0.5: "
                "the new arm is rated higher)",
            ),
            "<h3>Scores per arm</h3>" + _table_html(summary),
            "<h3>VGC AUC (case-bootstrap 95% CI)</h3>" + _table_html(tables["image_quality_vgc"]),
            "<h3>Proportional odds (odds ratio of a higher score on the new arm, "
            "case-clustered SE)</h3>"
            + _table_html(
                tables["image_quality_ordinal"],
                ["question", "new", "reference", "odds_ratio", "or_ci_low", "or_ci_high",
                 "p_value", "n_reads", "n_cases"],
            ),
            "<h3>Wilcoxon signed-rank per reader (Pratt), new minus reference</h3>"
            + _table_html(
                tables["image_quality_wilcoxon"],
                ["question", "reader", "new", "reference", "n_cases", "n_better", "n_worse",
                 "n_tied", "mean_difference", "p_value"],
            ),
        ]  # fmt: skip
    pref_rows: list[dict[str, Any]] = []
    choices = [*protocol.arm_codes, "equal"]
    for q in preference:
        part = answers[answers["question"].astype(str) == q.id].dropna(subset=["value"])
        if protocol.training_cases:
            part = part[~part["case"].astype(str).isin(protocol.training_cases)]
        pref_rows += [
            {"question": q.id, **r.to_dict()}
            for r in preference_by_reader(part.assign(value=part["value"].astype(str)), choices)
        ]
    if pref_rows:
        prefs = pd.DataFrame(pref_rows)
        section.tables["preferences"] = prefs
        data["preferences"] = pref_rows
        overall = prefs[prefs["reader"].isna()]
        html_parts.append("<h3>Preference (all readers; Wilson 95% CI)</h3>" + _table_html(overall))
    section.notes = notes
    section.data = data
    section.html = "".join(html_parts)
    return section


def _accuracy(
    protocol: Protocol,
    reads: pd.DataFrame,
    truth: pd.DataFrame,
    comparisons: list[tuple[str, str]],
) -> _Section | None:
    from analysis.accuracy import accuracy_table, finding_rating_array
    from analysis.mrmc import or_analysis

    ic = protocol.interchangeability
    if ic is None or truth.empty or truth["truth"].dropna().empty:
        return None
    section = _Section("accuracy", "Diagnostic accuracy against the reference standard")
    threshold = float(ic.threshold)
    table = accuracy_table(reads, truth, threshold=threshold)
    section.tables["accuracy"] = table
    mrmc_rows: list[dict[str, Any]] = []
    mrmc_json: list[dict[str, Any]] = []
    for reference, new in comparisons:
        for finding in dict.fromkeys(reads["finding"]):
            where = {"finding": finding, "new": new, "reference": reference}
            try:
                arr = finding_rating_array(reads, truth, str(finding), treatments=[new, reference])
            except AnalysisError as exc:
                mrmc_json.append({**where, "fom": "all", "error": str(exc)})
                continue
            for fom in ("auc", "sensitivity", "specificity"):
                try:
                    res = or_analysis(
                        arr.truth,
                        arr.ratings,
                        treatments=arr.treatments,
                        readers=arr.readers,
                        fom=fom,
                        threshold=None if fom == "auc" else threshold,
                    )
                except AnalysisError as exc:
                    mrmc_json.append({**where, "fom": fom, "error": str(exc)})
                    continue
                mrmc_json.append({**where, **res.to_dict()})
                means = res.treatment_means
                for test in (res.rrrc, res.frrc, res.rrfc):
                    diff = test.differences[0]
                    mrmc_rows.append(
                        {
                            **where, "fom": fom, "analysis": test.name, "fom_new": means[new],
                            "fom_reference": means[reference], "difference": diff.estimate,
                            "se": diff.se, "ci_low": diff.ci_low, "ci_high": diff.ci_high,
                            "statistic": test.statistic_name, "value": test.statistic,
                            "ndf": test.ndf, "ddf": test.ddf, "p": test.p,
                        }
                    )  # fmt: skip
    mrmc_frame = pd.DataFrame(mrmc_rows)
    section.tables["mrmc"] = mrmc_frame
    section.data = {"threshold": threshold, "per_reader": table, "mrmc": mrmc_json}
    errors = [m for m in mrmc_json if "error" in m]
    section.notes = [
        f"MRMC {m['fom']} not computed for {m['finding']}: {m['error']}" for m in errors
    ]
    rrrc = mrmc_frame[mrmc_frame["analysis"] == "rrrc"] if not mrmc_frame.empty else mrmc_frame
    section.html = (
        f"<p>A grade at or above {threshold:g} counts as a positive reading. "
        "Sensitivity and specificity per reader and arm with Wilson 95% CIs:</p>"
        + _table_html(
            table,
            [
                "finding",
                "reader",
                "arm",
                "tp",
                "fn",
                "tn",
                "fp",
                "sensitivity",
                "sensitivity_ci_low",
                "sensitivity_ci_high",
                "specificity",
                "specificity_ci_low",
                "specificity_ci_high",
            ],
        )
        + "<h3>Obuchowski-Rockette MRMC (random readers and cases, Hillis ddf)</h3>"
        + _table_html(
            rrrc,
            [
                "finding",
                "new",
                "reference",
                "fom",
                "fom_new",
                "fom_reference",
                "difference",
                "ci_low",
                "ci_high",
                "value",
                "ddf",
                "p",
            ],
        )
        + "<p>Fixed-reader (chi-square) and fixed-case analyses are in <code>mrmc.csv</code> "
        "and <code>results.json</code>.</p>"
    )
    return section


# ---------------------------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------------------------


def _methods_paragraph(protocol: Protocol, n_boot: int, seed: int, sections: Sequence[str]) -> str:
    """Methods in words, for the analyses that were run (``sections``: their keys)."""
    ic = protocol.interchangeability
    parts = []
    if ic is not None and "interchangeability" in sections:
        parts.append(
            "Interchangeability was assessed per finding with the excess-disagreement statistic "
            "of Obuchowski, Subhas and Schoenhagen (2014): for each case, the mean agreement of "
            "ordered pairs of different readers both reading the reference arm minus that of "
            "pairs in which one reader read the new arm and the other the reference arm, "
            f"averaged over cases (grades >= {ic.threshold} counted as present). Fixed-reader "
            "95% confidence intervals use the case-jackknife standard error (Wald), with a "
            f"case-bootstrap percentile interval ({n_boot} resamples) alongside; the "
            "random-reader analysis adds reader variability (jackknife variance components, "
            "with a two-way reader and case bootstrap that never pairs a reader with itself "
            "alongside). The new arm was declared interchangeable for a finding when the upper "
            f"95% bound was below the margin of {ic.margin:g}; one-sided p-values against the "
            "margin were Holm-adjusted across findings."
        )
    if "image_quality" in sections:
        parts.append(
            "Image-quality scores were compared per reader with the Wilcoxon signed-rank test "
            "(Pratt's handling of zero differences), with a proportional-odds model with "
            "case-clustered standard errors, and with visual grading characteristics (VGC; "
            "Båth and Månsson 2007) with a case-bootstrap CI; preferences are shares with "
            "Wilson 95% CIs."
        )
    if "agreement" in sections:
        parts.append(
            "Agreement between readers is given as pairwise proportions of agreement, Fleiss' "
            "kappa per arm (case-bootstrap CI), Gwet's AC1 (present/absent) and AC2 (grades, "
            "quadratic weights), and Cohen's quadratic-weighted kappa of each reader with "
            "themself between arms."
        )
    if "accuracy" in sections:
        parts.append(
            "Against the reference standard, sensitivity and specificity per reader and arm are "
            "given with Wilson 95% CIs, and the arms were compared with the "
            "Obuchowski-Rockette method (empirical AUC; case-jackknife covariances; "
            "random readers and cases with Hillis denominator degrees of freedom, fixed "
            "readers, fixed cases), for AUC, sensitivity (jackknife over diseased cases) and "
            "specificity (over non-diseased cases)."
        )
    parts.append(f"Random resampling used a seeded generator (seed {seed}).")
    return " ".join(parts)


def _comparisons(protocol: Protocol) -> list[tuple[str, str]]:
    reference = protocol.reference_arm.code
    return [(reference, arm.code) for arm in protocol.other_arms]


def build_report(
    answers: pd.DataFrame,
    protocol: Protocol,
    truth: pd.DataFrame | None,
    out_dir: Path,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    simulated_note: str | None = None,
    progress: ProgressCallback = no_progress,
) -> dict[str, Any]:
    """Analyse a study and write ``results.json``, CSV tables, PNG figures and ``report.html``.

    Parameters
    ----------
    answers : pandas.DataFrame
        The tidy unblinded export (``studies.export.answers_frame(store, unblinded=True)``).
    protocol : studies.protocol.Protocol
        The study protocol: arms (reference and new), readers, findings, questions.
    truth : pandas.DataFrame or None
        ``case, finding, truth`` (0/1) where the cases carry a reference standard.
    out_dir : pathlib.Path
        Folder to write into (created if needed).
    n_boot : int
        Bootstrap resamples.
    seed : int
        Seed of the random generator used by every bootstrap.
    simulated_note : str, optional
        When given, the first line of the report and the first key of ``results.json``.
    progress : callable
        ``progress(done, total, message)``.

    Returns
    -------
    dict
        The content of ``results.json``.
    """
    if n_boot < 1:
        raise AnalysisError(f"n_boot: expected a positive number of resamples, got {n_boot}")
    if "arm" not in answers.columns:
        raise AnalysisError(
            "answers: column 'arm' is missing; the report needs the unblinded export"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    comparisons = _comparisons(protocol)
    total = 5
    progress(0, total, "reads")

    sections: list[_Section] = []
    exclusions: list[dict[str, str]] = []
    reads: pd.DataFrame | None = None
    if protocol.interchangeability is not None:
        from analysis.reads import reads_from_answers

        table = reads_from_answers(answers, protocol, source="answers")
        reads = table.reads
        exclusions = [e.to_dict() for e in table.exclusions]
        progress(1, total, "interchangeability")
        sections.append(
            _interchangeability(protocol, reads, comparisons, out_dir, n_boot=n_boot, rng=rng)
        )
    progress(2, total, "image quality")
    iq = _image_quality(protocol, answers, comparisons, out_dir, n_boot=n_boot, rng=rng)
    if iq is not None:
        sections.append(iq)
    progress(3, total, "agreement")
    if reads is not None:
        sections.append(_agreement(protocol, reads, comparisons, out_dir, n_boot=n_boot, rng=rng))
    progress(4, total, "accuracy")
    if reads is not None and truth is not None and not truth.empty:
        acc = _accuracy(protocol, reads, truth, comparisons)
        if acc is not None:
            sections.append(acc)

    analysed = answers
    if protocol.training_cases:
        analysed = answers[~answers["case"].astype(str).isin(protocol.training_cases)]
    study = {
        "title": protocol.title,
        "design": protocol.design,
        "reference_arm": protocol.reference_arm.code,
        "new_arms": [arm.code for arm in protocol.other_arms],
        "arms": {arm.code: arm.description for arm in protocol.arms},
        "readers": sorted(analysed["reader"].dropna().astype(str).unique()),
        "n_readers": int(analysed["reader"].nunique()),
        "n_cases": int(analysed["case"].nunique()),
        "training_cases_excluded": list(protocol.training_cases),
        "findings": [f.id for f in protocol.findings],
        "exclusions": exclusions,
    }
    iq_exclusions = iq.data.get("exclusions", []) if iq is not None else []
    methods = _methods_paragraph(protocol, n_boot, seed, [sec.key for sec in sections])

    files: dict[str, list[str]] = {"tables": [], "figures": []}
    for section in sections:
        for name, frame in section.tables.items():
            path = out_dir / f"{name}.csv"
            _write_atomic(path, frame.to_csv(index=False).encode("utf-8"))
            files["tables"].append(path.name)
        files["figures"] += [p.name for p in section.figures.values()]
    if exclusions or iq_exclusions:
        path = out_dir / "exclusions.csv"
        _write_atomic(path, pd.DataFrame(exclusions + iq_exclusions).to_csv(index=False).encode())
        files["tables"].append(path.name)

    results: dict[str, Any] = {}
    if simulated_note:
        results["simulated_note"] = simulated_note
    results["study"] = study
    results["methods"] = methods
    results["references"] = list(REFERENCES)
    results["n_boot"] = n_boot
    results["seed"] = seed
    for section in sections:
        results[section.key] = {**section.data, "notes": section.notes}
    results["decisions"] = [
        _decision_sentence(r, {f.id: f.label for f in protocol.findings}, protocol)
        for r in (results.get("interchangeability") or {}).get("fixed_readers", [])
    ]
    results["files"] = {**files, "report": "report.html", "results": "results.json"}
    results = _json_ready(results)
    _write_atomic(
        out_dir / "results.json", json.dumps(results, indent=2, ensure_ascii=False).encode("utf-8")
    )
    _write_atomic(
        out_dir / "report.html",
        _report_html(protocol, study, methods, sections, simulated_note).encode("utf-8"),
    )
    progress(total, total, "report written")
    return results


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
.simulated { background: #fde2e1; border: 2px solid #c62828; padding: .6rem 1rem;
             font-weight: 700; }
table { border-collapse: collapse; font-size: .8rem; margin: .5rem 0 1.2rem; }
th, td { border: 1px solid #ccc; padding: .2rem .45rem; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1rem 0; } figure img { max-width: 100%; }
figcaption { font-size: .85rem; color: #555; }
.note { font-style: italic; color: #8a4b00; }
"""


def _report_html(
    protocol: Protocol,
    study: Mapping[str, Any],
    methods: str,
    sections: list[_Section],
    simulated_note: str | None,
) -> str:
    esc = html.escape
    lines: list[str] = []
    if simulated_note:
        lines.append(f"<!-- {esc(simulated_note).replace('--', '- -')} -->")
    lines.append("<!DOCTYPE html>")
    lines.append('<html lang="en"><head><meta charset="utf-8">')
    lines.append(f"<title>{esc(protocol.title)}</title><style>{_CSS}</style></head><body>")
    if simulated_note:
        lines.append(f'<p class="simulated">{esc(simulated_note)}</p>')
    lines.append(f"<h1>{esc(protocol.title)}</h1>")
    new_arms = ", ".join(_arm_label(protocol, a) for a in study["new_arms"])
    lines.append(
        "<h2>Study</h2><ul>"
        f"<li>Design: {esc(protocol.design)}</li>"
        f"<li>Reference arm: {esc(_arm_label(protocol, study['reference_arm']))}</li>"
        f"<li>New arm(s): {esc(new_arms)}</li>"
        f"<li>Readers: {study['n_readers']} ({esc(', '.join(study['readers']))})</li>"
        f"<li>Cases: {study['n_cases']}"
        + (
            f" (training cases excluded: {esc(', '.join(study['training_cases_excluded']))})"
            if study["training_cases_excluded"]
            else ""
        )
        + "</li>"
        f"<li>Exclusions: {len(study['exclusions'])} case-finding combination(s)</li></ul>"
    )
    if study["exclusions"]:
        lines.append(_table_html(pd.DataFrame(study["exclusions"])))
    lines.append(f"<h2>Methods</h2><p>{esc(methods)}</p>")
    for section in sections:
        lines.append(f"<h2>{esc(section.title)}</h2>{section.html}")
        lines += [f'<p class="note">{esc(note)}</p>' for note in section.notes]
    lines.append(
        "<h2>References</h2><ol>" + "".join(f"<li>{esc(r)}</li>" for r in REFERENCES) + "</ol>"
    )
    lines.append("</body></html>")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------


def inputs_from_db(db: Path | str) -> tuple[pd.DataFrame, Protocol, pd.DataFrame | None]:
    """Unblinded answers, protocol and truth of a study database (through the studies API)."""
    from studies.export import answers_frame, truth_frame
    from studies.store import Store

    with Store.open(db) as store:
        return answers_frame(store, unblinded=True), store.protocol, truth_frame(store)


def inputs_from_csv(
    answers_csv: Path, protocol_toml: Path, truth_csv: Path | None = None
) -> tuple[pd.DataFrame, Protocol, pd.DataFrame | None]:
    """Answers from a tidy unblinded export CSV, the protocol TOML and an optional truth CSV.

    Raises
    ------
    AnalysisError
        A missing or unreadable file, or a missing column (naming the file and the column).
    """
    from studies.protocol import load_protocol

    protocol = load_protocol(protocol_toml)
    answers = _read_csv(answers_csv, ("reader", "case", "arm", "question", "finding", "value"))
    truth = None
    if truth_csv is not None:
        truth = _read_csv(truth_csv, ("case", "finding", "truth"))
        values = pd.to_numeric(truth["truth"], errors="coerce")
        bad = values.notna() & ~values.isin([0, 1]) | (values.isna() & truth["truth"].ne(""))
        if bad.any():
            raise AnalysisError(
                f"{truth_csv}: column 'truth': expected 0, 1 or empty, got "
                f"{truth['truth'][bad].iloc[0]!r}"
            )
        truth = truth.assign(truth=values).dropna(subset=["truth"])
        truth["truth"] = truth["truth"].astype(int)
    return answers, protocol, truth


def _read_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"{path}: no such CSV file")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise AnalysisError(f"{path}: not a readable CSV file ({exc})") from exc
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise AnalysisError(
            f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(required)}"
        )
    # empty cells are "no finding" / "no side" in the export, not the text ""
    return frame.replace("", None)
