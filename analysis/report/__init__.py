"""The study report: ``results.json``, CSV tables, PNG figures and a self-contained ``report.html``.

:func:`build_report` runs every registered section that the protocol and the data allow, in
order, and renders them with one Jinja2 template (``templates/report.html.j2``). The report
opens with the primary analysis the protocol names (default: random readers), which interval
decides, the multiplicity family and every decision the sections made.

Adding a section
----------------
A section is one small module under ``analysis/report/sections/`` (or anywhere that is imported
before :func:`build_report` runs) holding a :class:`~analysis.report.base.Section` subclass::

    from analysis.report.base import Section, SectionResult, register_section
    from analysis.report.context import ReportContext

    @register_section
    class MeasurementSection(Section):
        key = "measurement"            # its key in results.json, and the HTML anchor
        title = "Quantitative measurements"
        order = 55                     # built-in sections use multiples of 10

        def applies(self, ctx: ReportContext) -> bool:
            return any(q.type == "number" for q in ctx.protocol.questions)

        def compute(self, ctx: ReportContext) -> SectionResult:
            result = self.result()
            frame = ...                                  # compute from ctx.analysed, ctx.truth
            result.data["bland_altman"] = frame          # -> results.json (made JSON-ready)
            result.tables["measurement_bland_altman"] = frame   # -> CSV
            result.paragraph("Limits of agreement ...")
            result.table(frame, {"question": "question", "bias": "bias"})
            result.figure(Figure(my_plot(frame, ctx.figure_path("bland_altman")), "caption"))
            result.decisions.append(Decision(...))       # listed first in the report
            result.methods = "Bland-Altman limits of agreement ..."
            return result

- ``ctx`` (:class:`~analysis.report.context.ReportContext`) holds the protocol and its
  ``[analysis]`` settings, the answers, the truth, the output folder, ``ctx.rng(key)`` (each
  section draws from its own seeded stream), ``ctx.cached`` for values sections share and
  ``ctx.results`` (the sections computed before this one).
- An :class:`~analysis.errors.AnalysisError` raised by ``compute`` leaves the section out with
  a note; anything else is a bug and propagates.
- The default template renders the result's blocks; a section with its own layout sets
  ``result.template`` to a file under ``templates/sections/`` (it gets ``section``).
- Apply the protocol's multiplicity family to any decision with
  :func:`analysis.multiplicity.decide`.

Every file is written to a temporary name and renamed, so an interrupted run never leaves a
half-written file behind.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from analysis.errors import AnalysisError
from analysis.report import sections as _builtin_sections  # noqa: F401  (registers them)
from analysis.report.base import (
    Decision,
    Figure,
    Section,
    SectionResult,
    register_section,
    registered_sections,
)
from analysis.report.context import ReportContext
from analysis.report.inputs import (
    assignments_from_db,
    inputs_from_csv,
    inputs_from_db,
    measurements_from_csv,
    measurements_from_db,
    study_record_from_db,
)
from studies.progress import ProgressCallback, no_progress

if TYPE_CHECKING:
    from studies.protocol import Protocol

__all__ = [
    "Decision",
    "Figure",
    "ReportContext",
    "Section",
    "SectionResult",
    "assignments_from_db",
    "build_report",
    "inputs_from_csv",
    "inputs_from_db",
    "measurements_from_csv",
    "measurements_from_db",
    "register_section",
    "registered_sections",
    "study_record_from_db",
]


def json_ready(value: Any) -> Any:
    """Numpy -> Python, NaN/inf -> None, objects with to_dict -> dicts, frames -> records."""
    if hasattr(value, "to_dict") and not isinstance(value, pd.DataFrame | pd.Series | dict):
        return json_ready(value.to_dict())
    if isinstance(value, pd.DataFrame):
        return json_ready(value.to_dict(orient="records"))
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def build_report(
    answers: pd.DataFrame,
    protocol: Protocol,
    truth: pd.DataFrame | None,
    out_dir: Path,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    simulated_note: str | None = None,
    assignments: pd.DataFrame | None = None,
    measurements: pd.DataFrame | None = None,
    study_record: Mapping[str, Any] | None = None,
    progress: ProgressCallback = no_progress,
) -> dict[str, Any]:
    """Analyse a study and write ``results.json``, CSV tables, PNG figures and ``report.html``.

    Parameters
    ----------
    answers : pandas.DataFrame
        The tidy unblinded export (``studies.export.answers_frame(store, unblinded=True)``).
    protocol : studies.protocol.Protocol
        The study protocol: arms (reference and new), readers, findings, questions and the
        ``[analysis]`` settings.
    truth : pandas.DataFrame or None
        ``case, finding, truth`` (0/1) where the cases carry a reference standard.
    out_dir : pathlib.Path
        Folder to write into (created if needed).
    n_boot : int
        Bootstrap resamples.
    seed : int
        Seed from which every bootstrap's generator derives.
    simulated_note : str, optional
        When given, the first line of the report and the first key of ``results.json``.
    assignments : pandas.DataFrame, optional
        ``studies.export.assignments_frame`` of the study (every assigned read, answered or
        not): the flow diagram and the missing-data tables then count what was expected.
    measurements : pandas.DataFrame, optional
        ``studies.export.measurements_frame(store, unblinded=True)``: the continuous read-outs
        of the protocol's ``[[measurements]]`` (the measurement section needs it).
    study_record : mapping, optional
        :func:`~analysis.report.inputs.study_record_from_db` of the study: the Study section
        states whether the record verified, how readers sign in and whether image statistics
        tell the arms apart, and ``results.json`` keeps the report's anchor (``study_record``).
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
    ctx = ReportContext(
        protocol=protocol,
        answers=answers,
        truth=truth,
        out_dir=out_dir,
        n_boot=n_boot,
        seed=seed,
        assignments=assignments,
        measurements=measurements,
        study_record=dict(study_record) if study_record is not None else None,
    )
    ctx.reads_table  # noqa: B018  (validates the reads up front: bad input fails before any file)
    classes = registered_sections()
    total = len(classes) + 1
    computed: list[SectionResult] = []
    skipped: list[str] = []
    for done, cls in enumerate(classes):
        section = cls()
        progress(done, total, section.title)
        if not section.applies(ctx):
            continue
        try:
            result = section.compute(ctx)
        except AnalysisError as exc:
            skipped.append(f"{section.title} not computed: {exc}")
            continue
        ctx.results[result.key] = result
        computed.append(result)
    progress(total - 1, total, "writing")
    results = _results_json(ctx, computed, skipped, simulated_note)
    _write_atomic(
        out_dir / "results.json", json.dumps(results, indent=2, ensure_ascii=False).encode("utf-8")
    )
    from analysis.report.render import render_report

    page = render_report(
        title=protocol.title,
        simulated_note=simulated_note,
        summary=_summary(ctx, computed, skipped),
        sections=computed,
        methods=[(r.title, r.methods) for r in computed if r.methods],
        references=_references(computed),
    )
    _write_atomic(out_dir / "report.html", page.encode("utf-8"))
    progress(total, total, "report written")
    return results


def _references(sections: list[SectionResult]) -> list[str]:
    return list(dict.fromkeys(ref for section in sections for ref in section.references))


def _summary(
    ctx: ReportContext, sections: list[SectionResult], skipped: list[str]
) -> dict[str, Any]:
    settings = ctx.settings
    ic = ctx.protocol.interchangeability
    if ic is not None:
        if settings.primary == "random-readers":
            primary = (
                "Primary analysis (pre-specified): random readers and cases, a claim about "
                "radiologists like these readers in general. The upper bound of its two-sided "
                "95% interval (Obuchowski-Rockette variance of the reader pseudovalues, t with "
                "Hillis degrees of freedom, never below the fixed-reader bound) decides, "
                f"against the margin {ic.margin:g}. The fixed-reader analysis (these readers "
                "only) is secondary."
            )
        else:
            primary = (
                "Primary analysis (pre-specified): fixed readers, a claim about the readers of "
                "this study only. The upper bound of its two-sided 95% interval (calibrated "
                f"bootstrap-t over cases) decides, against the margin {ic.margin:g}. The "
                "random-reader analysis (radiologists in general) is secondary."
            )
    else:
        primary = "The protocol has no interchangeability question: image quality is primary."
    arms = len(ctx.comparisons)
    if settings.multiplicity == "holm":
        family = (
            "Multiplicity (pre-specified): each finding on its own; p-values are Holm-adjusted "
            "across the findings (and across the questions of image quality, and the findings "
            "and figures of merit of accuracy), and every decision below uses the adjusted value."
        )
        if arms > 1:
            family += (
                f" With {arms} new arms each compared with the reference, every family spans "
                "all arms: one member per arm and finding (question, measurement)."
            )
    else:
        family = (
            "Multiplicity (pre-specified): intersection-union: the claim is joint, every finding "
            "(every question, every figure of merit) must pass at the unadjusted level for it "
            "to hold; no single finding is claimed on its own."
        )
        if arms > 1:
            family += (
                f" With {arms} new arms, the joint claim is that every new arm passes on every "
                "finding (question, measurement)."
            )
    decisions = [d for section in sections for d in section.decisions]
    return {
        "primary": primary,
        "multiplicity": family,
        "decisions": decisions,
        "skipped": skipped,
    }


def _results_json(
    ctx: ReportContext,
    sections: list[SectionResult],
    skipped: list[str],
    simulated_note: str | None,
) -> dict[str, Any]:
    out_dir = ctx.out_dir
    files: dict[str, list[str]] = {"tables": [], "figures": []}
    for section in sections:
        for name, frame in section.tables.items():
            path = out_dir / f"{name}.csv"
            _write_atomic(path, frame.to_csv(index=False).encode("utf-8"))
            files["tables"].append(path.name)
        files["figures"] += [figure.path.name for figure in section.figures]
    results: dict[str, Any] = {}
    if simulated_note:
        results["simulated_note"] = simulated_note
    study = ctx.results.get("study")
    if study is not None:
        results["study"] = study.data
    if ctx.study_record is not None:
        results["study_record"] = ctx.study_record["anchor"]
    results["analysis_plan"] = ctx.settings.model_dump(mode="json")
    results["methods"] = " ".join(s.methods for s in sections if s.methods)
    results["references"] = _references(sections)
    results["n_boot"] = ctx.n_boot
    results["seed"] = ctx.seed
    for section in sections:
        if section.key == "study":
            continue
        results[section.key] = {**section.data, "notes": section.notes}
    # The headline decisions (interchangeability, primary analysis); every decision with its
    # section in "all_decisions".
    results["decisions"] = [
        d.sentence for s in sections for d in s.decisions if s.key == "interchangeability"
    ]
    results["all_decisions"] = [
        {"section": d.section, "claim": d.claim, "sentence": d.sentence, "passed": d.passed,
         "family": d.family}
        for s in sections
        for d in s.decisions
    ]  # fmt: skip
    results["not_computed"] = skipped
    results["files"] = {**files, "report": "report.html", "results": "results.json"}
    ready: dict[str, Any] = json_ready(results)
    return ready
