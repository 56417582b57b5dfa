"""The report's sections: the primary analysis first, the family applied everywhere, the
planning quoted, sensitivity analyses labelled, order effects stated, a section registry."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from analysis.errors import AnalysisError
from analysis.report import (
    Decision,
    Section,
    SectionResult,
    build_report,
    register_section,
    registered_sections,
)
from analysis.report.base import _REGISTRY
from analysis.report.context import ReportContext
from analysis.simulated_study import simulate_answers
from studies.protocol import parse_protocol
from tests.analysis.test_report import SMALL

PLANNED = """
[analysis]
primary = "fixed-readers"
multiplicity = "intersection-union"
squared_margin = 0.3

[[analysis.sensitivity]]
measure = "squared"

[[analysis.sensitivity]]
label = "random readers"
readers = "random-readers"

[analysis.planning]
text = "60 cases and 3 readers give 80% power (blindreader plan, 400 studies)."
n_cases = 60
n_readers = 3
power = 0.8
"""


@pytest.fixture(scope="module")
def planned_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    protocol = parse_protocol(SMALL + PLANNED, "planned.toml")
    study = simulate_answers(protocol, 40, np.random.default_rng(8), fatigue=0.5)
    out = tmp_path_factory.mktemp("planned")
    results = build_report(study.answers, protocol, study.truth, out, n_boot=200, seed=2)
    return out, results


def test_the_primary_analysis_is_stated_first_with_its_interval(planned_report):
    out, results = planned_report
    page = (out / "report.html").read_text()
    summary = page.index('id="summary"')
    assert page.index("Primary analysis (pre-specified): fixed readers") > summary
    assert page.index("calibrated bootstrap-t") < page.index('id="study"')
    assert results["analysis_plan"]["primary"] == "fixed-readers"
    rows = results["interchangeability"]["fixed_readers"]
    assert {r["role"] for r in rows} == {"primary"}
    assert {r["role"] for r in results["interchangeability"]["random_readers"]} == {"secondary"}


def test_intersection_union_gives_one_joint_decision_per_section(planned_report):
    _, results = planned_report
    decisions = results["all_decisions"]
    ic = [d for d in decisions if d["section"] == "interchangeability"]
    assert len(ic) == 1 and "jointly" in ic[0]["sentence"]
    assert "intersection-union" in ic[0]["sentence"]
    iq = [d for d in decisions if d["section"] == "image_quality"]
    assert len(iq) == 1 and "all 1 questions jointly" in iq[0]["sentence"]
    assert all(d["family"] in ("intersection-union", "holm") for d in decisions)
    rows = results["interchangeability"]["fixed_readers"]
    assert all(r["p_adjusted"] == r["p_value"] for r in rows)  # no adjustment under IUT


def test_the_planning_is_quoted_and_sensitivity_analyses_are_labelled(planned_report):
    out, results = planned_report
    page = (out / "report.html").read_text()
    assert "60 cases and 3 readers give 80% power" in page
    assert results["planning"]["n_cases"] == 60
    names = [a["name"] for a in results["sensitivity"]["analyses"]]
    assert names[0].startswith("S1: squared-difference index")
    assert names[1] == "S2: random readers"
    squared = results["sensitivity"]["analyses"][0]
    assert squared["margin"] == 0.3 and squared["measure"] == "squared"
    assert page.count("Sensitivity analysis: ") >= 4
    assert (out / "sensitivity_forest.png").is_file()


def test_reading_order_heterogeneity_missing_data_and_mrmc_tables(planned_report):
    out, results = planned_report
    order = results["reading_order"]
    assert set(order["covariates"]) == {"position", "session", "elapsed", "active"}
    assert isinstance(order["order_effects_detected"], bool)
    assert any(d["section"] == "reading_order" for d in results["all_decisions"])
    assert (out / "reading_order_drift.png").is_file()
    components = results["reader_heterogeneity"]["variance_components"]
    assert {"case_var", "reader_var", "ms_r", "cov2", "df"} <= set(components[0])
    per_reader = results["reader_heterogeneity"]["per_reader"]
    assert {r["reader"] for r in per_reader} == {"R1", "R2", "R3"}
    assert results["study"]["flow"]["steps"][0]["count"] == 40
    assert sum(r["missing"] for r in results["study"]["missing_by_reader"]) == 0
    mrmc = (out / "mrmc.csv").read_text().splitlines()[0].split(",")
    assert {"F", "ndf", "ddf", "p", "p_adjusted"} <= set(mrmc)
    page = (out / "report.html").read_text()
    assert "<th>ndf</th>" in page and "<th>ddf</th>" in page


def test_missing_answers_are_counted_per_reader_and_case(tmp_path: Path):
    protocol = parse_protocol(SMALL, "small.toml")
    study = simulate_answers(protocol, 20, np.random.default_rng(1))
    answers = study.answers
    gone = (answers["reader"] == "R2") & (answers["case"].isin(["case0003", "case0007"]))
    gone &= answers["arm"] == "dl"
    results = build_report(answers[~gone], protocol, None, tmp_path, n_boot=50)
    by_reader = {r["reader"]: r for r in results["study"]["missing_by_reader"]}
    assert by_reader["R2"]["missing"] == 2 * 3  # two cases x (two findings + one quality)
    assert by_reader["R2"]["cases_incomplete"] == 2 and by_reader["R1"]["missing"] == 0
    assert {r["case"] for r in results["study"]["missing_by_case"]} == {"case0003", "case0007"}
    page = (tmp_path / "report.html").read_text()
    assert "Every analysis is complete-case" in page


def test_a_section_can_be_added_through_the_registry(tmp_path: Path):
    @register_section
    class CountSection(Section):
        key = "test_count"
        title = "Answer count"
        order = 55

        def compute(self, ctx: ReportContext) -> SectionResult:
            result = self.result()
            result.data["answers"] = len(ctx.analysed)
            result.paragraph(f"{len(ctx.analysed)} answers <counted>")
            result.decisions.append(Decision(self.key, "count", "Counted.", True, "holm"))
            result.methods = "Answers were counted."
            return result

    @register_section
    class FailingSection(Section):
        key = "test_failing"
        title = "Always fails"
        order = 56

        def compute(self, ctx: ReportContext) -> SectionResult:
            raise AnalysisError("the data do not allow it")

    try:
        protocol = parse_protocol(SMALL, "small.toml")
        study = simulate_answers(protocol, 12, np.random.default_rng(2))
        results = build_report(study.answers, protocol, None, tmp_path, n_boot=20)
        assert results["test_count"]["answers"] == len(study.answers)
        assert "test_failing" not in results
        assert any("Always fails not computed" in s for s in results["not_computed"])
        page = (tmp_path / "report.html").read_text()
        assert "&lt;counted&gt;" in page  # escaped by the template
        pattern = r'<section id="(agreement|test_count|image_quality)"'
        order = [m.group(1) for m in re.finditer(pattern, page)]
        assert order == ["agreement", "test_count", "image_quality"]
        assert "Answers were counted." in page
        with pytest.raises(ValueError, match="already registered"):

            @register_section
            class Duplicate(Section):
                key = "test_count"
                title = "again"
                order = 1

                def compute(self, ctx: ReportContext) -> SectionResult:
                    return self.result()

    finally:
        _REGISTRY.pop("test_count", None)
        _REGISTRY.pop("test_failing", None)
    assert "test_count" not in {cls.key for cls in registered_sections()}


def test_results_json_is_plain_json(planned_report):
    out, results = planned_report
    assert json.loads((out / "results.json").read_text()) == results
